package sinks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"
	"go.uber.org/zap"
)

// Setup outcomes reported by SetupElasticsearch.
const (
	SetupCreated   = "created"
	SetupUpdated   = "updated"
	SetupUnchanged = "unchanged"
)

// serverManagedTemplateKeys are top-level keys Elasticsearch adds to a
// stored index template; they do not count as differences.
var serverManagedTemplateKeys = map[string]bool{
	"created_date": true, "created_date_millis": true,
	"modified_date": true, "modified_date_millis": true,
}

// SetupElasticsearch installs the index template (PUT
// _index_template/<template_name>) for `netsentinel setup elasticsearch`.
// It is idempotent: it GETs the installed template first and only writes
// when it is missing or differs. The report says what it did, e.g.
// "index template logs-netsentinel.alert: created (priority 200, patterns
// logs-netsentinel.alert-*)".
func SetupElasticsearch(ctx context.Context, cfg ElasticsearchConfig, template []byte, log *zap.Logger) (string, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cfg.ApplyEnv(os.Getenv)
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	var want map[string]any
	if err := json.Unmarshal(template, &want); err != nil {
		return "", fmt.Errorf("index template is not a JSON object: %w", err)
	}
	if _, ok := want["index_patterns"]; !ok {
		return "", fmt.Errorf("index template has no index_patterns")
	}
	client, tr, err := newESClient(cfg, log)
	if err != nil {
		return "", err
	}
	defer tr.CloseIdleConnections()
	name := cfg.TemplateName
	where := strings.Join(stripUserinfo(cfg.Addresses()), ", ")

	rctx, cancel := context.WithTimeout(ctx, min(cfg.RequestTimeout, 60*time.Second))
	defer cancel()
	res, err := esapi.IndicesGetIndexTemplateRequest{Name: name}.Do(rctx, client)
	if err != nil {
		return "", setupTransportError(where, err)
	}
	raw, _ := io.ReadAll(io.LimitReader(res.Body, maxESResponse))
	res.Body.Close()
	outcome := SetupCreated
	switch {
	case res.StatusCode == http.StatusNotFound:
	case res.StatusCode == http.StatusOK:
		var got struct {
			IndexTemplates []struct {
				Name          string         `json:"name"`
				IndexTemplate map[string]any `json:"index_template"`
			} `json:"index_templates"`
		}
		if err := json.Unmarshal(raw, &got); err != nil {
			return "", fmt.Errorf("GET _index_template/%s on %s: answer is not an index template list: %w", name, where, err)
		}
		outcome = SetupUpdated
		for _, t := range got.IndexTemplates {
			if t.Name == name && templatesEqual(want, t.IndexTemplate) {
				outcome = SetupUnchanged
			}
		}
	default:
		return "", setupStatusError("GET", name, where, res.StatusCode, raw)
	}

	if outcome != SetupUnchanged {
		res, err := esapi.IndicesPutIndexTemplateRequest{Name: name, Body: bytes.NewReader(template)}.Do(rctx, client)
		if err != nil {
			return "", setupTransportError(where, err)
		}
		raw, _ := io.ReadAll(io.LimitReader(res.Body, maxESResponse))
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return "", setupStatusError("PUT", name, where, res.StatusCode, raw)
		}
	}
	report := fmt.Sprintf("index template %s: %s (priority %v, patterns %s, composed of %s) on %s",
		name, outcome, want["priority"], listString(want["index_patterns"]), listString(want["composed_of"]), where)
	log.Info("elasticsearch setup", zap.String("template", name), zap.String("outcome", outcome))
	return report, nil
}

func setupTransportError(where string, err error) error {
	if isProductCheckError(err) {
		return fmt.Errorf("%w: %s answered without the X-Elastic-Product: Elasticsearch header; check the URL", ErrNotElasticsearch, where)
	}
	return fmt.Errorf("%w: %s: %w", ErrESUnreachable, where, err)
}

func setupStatusError(method, name, where string, status int, raw []byte) error {
	switch status {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w: %s _index_template/%s on %s: HTTP 401: check api_key / username and password", ErrESAuth, method, name, where)
	case http.StatusForbidden:
		return fmt.Errorf("%w: %s _index_template/%s on %s: HTTP 403: setup needs the manage_index_templates cluster privilege (%s)", ErrESAuth, method, name, where, esErrorSummary(raw))
	}
	return fmt.Errorf("%w: %s _index_template/%s on %s: HTTP %d: %s", ErrESRejected, method, name, where, status, esErrorSummary(raw))
}

func listString(v any) string {
	l, ok := v.([]any)
	if !ok || len(l) == 0 {
		return "[]"
	}
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// templatesEqual compares an index template as we send it with one as
// Elasticsearch returns it: settings values come back as strings and nested
// under "index", and a few server-managed keys are added.
func templatesEqual(want, got map[string]any) bool {
	a, b := flattenTemplate(want), flattenTemplate(got)
	return reflect.DeepEqual(a, b)
}

func flattenTemplate(t map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range t {
		if serverManagedTemplateKeys[k] {
			continue
		}
		if ds, ok := v.(map[string]any); ok && k == "data_stream" {
			// GET adds the defaults hidden:false, allow_custom_routing:false.
			clean := map[string]any{}
			for dk, dv := range ds {
				if b, isBool := dv.(bool); isBool && !b && (dk == "hidden" || dk == "allow_custom_routing") {
					continue
				}
				clean[dk] = dv
			}
			v = clean
		}
		flattenInto(out, k, v)
	}
	// Normalise settings: "template.settings.index.x" == "template.settings.x".
	norm := map[string]string{}
	for k, v := range out {
		if rest, ok := strings.CutPrefix(k, "template.settings."); ok {
			k = "template.settings." + strings.TrimPrefix(rest, "index.")
		}
		norm[k] = v
	}
	return norm
}

func flattenInto(out map[string]string, prefix string, v any) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[prefix] = "{}"
			return
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			flattenInto(out, prefix+"."+k, x[k])
		}
	case []any:
		for i, e := range x {
			flattenInto(out, prefix+"["+strconv.Itoa(i)+"]", e)
		}
		if len(x) == 0 {
			out[prefix] = "[]"
		}
	case nil:
		out[prefix] = "null"
	case string:
		out[prefix] = x
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}
