package sinks

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// esDouble is a strict Elasticsearch test double implementing the parts of
// the documented REST contract the sink relies on:
//
//   - every answer carries X-Elastic-Product: Elasticsearch (unless
//     NotElasticsearch);
//   - authentication: API key ("Authorization: ApiKey base64(id:key)") or
//     basic; 401 with a security_exception otherwise;
//   - POST /_bulk: Content-Type application/x-ndjson or application/json,
//     gzip bodies when Content-Encoding: gzip, body terminated by '\n';
//     action lines index/create/update/delete with _index (or a path
//     index); data streams (names matching logs-*-*) accept only create and
//     need @timestamp; create of an existing _id answers 409
//     version_conflict_engine_exception; each item answers on its own;
//   - GET / (info), GET/PUT /_index_template/<name> (settings values are
//     returned as strings, data_stream gets its defaults, as Elasticsearch
//     does).
//
// Faults are injected per item (ItemFault) and per request (RequestFault).
type esDouble struct {
	t   *testing.T
	srv *httptest.Server

	APIKey           string // expected "id:key"; empty with User: no auth
	User, Pass       string
	NotElasticsearch bool
	// ItemFault returns a status (0: behave normally) for the n-th time
	// (1-based) the _id is seen, and the error type to report.
	ItemFault func(id string, n int) (int, string)
	// RequestFault returns a whole-request status (0: none) for the n-th
	// bulk request (1-based) given its ids; -1 drops the connection before
	// doing anything, -2 performs the items and then drops the connection
	// (the answer is lost).
	RequestFault func(n int, ids []string) int

	mu        sync.Mutex
	docs      map[string]map[string]json.RawMessage // index -> _id -> source
	seen      map[string]int
	requests  []bulkRecord
	templates map[string]json.RawMessage
	puts      int
}

// bulkRecord is what the double saw in one bulk request.
type bulkRecord struct {
	At      time.Time
	IDs     []string
	Actions []string
	Indices []string
	Gzip    bool
	Auth    string
	Header  http.Header
}

func newESDouble(t *testing.T) *esDouble {
	return newESDoubleTLS(t, nil)
}

// newESDoubleTLS starts the double over TLS with serverTLS (nil: plain HTTP).
func newESDoubleTLS(t *testing.T, serverTLS *tls.Config) *esDouble {
	d := &esDouble{t: t, docs: map[string]map[string]json.RawMessage{}, seen: map[string]int{}, templates: map[string]json.RawMessage{}}
	d.srv = httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	d.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	if serverTLS != nil {
		d.srv.TLS = serverTLS
		d.srv.StartTLS()
	} else {
		d.srv.Start()
	}
	t.Cleanup(d.srv.Close)
	return d
}

func (d *esDouble) URL() string { return d.srv.URL }

func (d *esDouble) Requests() []bulkRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]bulkRecord(nil), d.requests...)
}

func (d *esDouble) Doc(index, id string) (json.RawMessage, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	b, ok := d.docs[index][id]
	return b, ok
}

func (d *esDouble) Count(index string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.docs[index])
}

// Put stores a document directly (as if an earlier run delivered it).
func (d *esDouble) Put(index, id string, src string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.docs[index] == nil {
		d.docs[index] = map[string]json.RawMessage{}
	}
	d.docs[index][id] = json.RawMessage(src)
}

func (d *esDouble) writeJSON(w http.ResponseWriter, status int, v any) {
	if !d.NotElasticsearch {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func esErr(status int, typ, reason string) map[string]any {
	e := map[string]any{"type": typ, "reason": reason}
	return map[string]any{"error": map[string]any{"root_cause": []any{e}, "type": typ, "reason": reason}, "status": status}
}

func (d *esDouble) authorized(r *http.Request) bool {
	got := r.Header.Get("Authorization")
	switch {
	case d.APIKey != "":
		// The scheme is case-insensitive (RFC 9110); go-elasticsearch sends "APIKey".
		scheme, cred, ok := strings.Cut(got, " ")
		return ok && strings.EqualFold(scheme, "ApiKey") && cred == base64.StdEncoding.EncodeToString([]byte(d.APIKey))
	case d.User != "":
		u, p, ok := r.BasicAuth()
		return ok && u == d.User && p == d.Pass
	}
	return true
}

func (d *esDouble) serve(w http.ResponseWriter, r *http.Request) {
	if !d.authorized(r) {
		w.Header().Set("WWW-Authenticate", `ApiKey, Basic realm="security"`)
		d.writeJSON(w, 401, esErr(401, "security_exception", "unable to authenticate user for REST request ["+r.URL.Path+"]"))
		return
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			d.writeJSON(w, 400, esErr(400, "parse_exception", "bad gzip: "+err.Error()))
			return
		}
		r.Body = io.NopCloser(zr)
	}
	path := strings.Trim(r.URL.Path, "/")
	switch {
	case path == "" && r.Method == http.MethodGet:
		d.writeJSON(w, 200, map[string]any{"name": "double", "cluster_name": "esdouble",
			"version": map[string]any{"number": "8.19.7"}, "tagline": "You Know, for Search"})
	case path == "_bulk" || strings.HasSuffix(path, "/_bulk"):
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			d.writeJSON(w, 405, esErr(405, "method_not_allowed", r.Method))
			return
		}
		d.bulk(w, r, strings.TrimSuffix(strings.TrimSuffix(path, "_bulk"), "/"))
	case strings.HasPrefix(path, "_index_template/"):
		d.template(w, r, strings.TrimPrefix(path, "_index_template/"))
	default:
		d.writeJSON(w, 404, esErr(404, "resource_not_found_exception", "no handler for "+r.Method+" /"+path))
	}
}

func isDataStreamName(index string) bool {
	return strings.HasPrefix(index, "logs-") && strings.Count(index, "-") >= 2
}

func (d *esDouble) bulk(w http.ResponseWriter, r *http.Request, pathIndex string) {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		d.writeJSON(w, 406, esErr(406, "media_type_header_exception", "Content-Type header ["+ct+"] is not supported"))
		return
	}
	gz := r.Header.Get("Content-Encoding") == "gzip"
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		d.writeJSON(w, 400, esErr(400, "parse_exception", err.Error()))
		return
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		d.writeJSON(w, 400, esErr(400, "illegal_argument_exception", "The bulk request must be terminated by a newline [\\n]"))
		return
	}
	type op struct {
		action, index, id string
		src               []byte
	}
	var ops []op
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var a map[string]struct {
			Index string `json:"_index"`
			ID    string `json:"_id"`
		}
		if err := json.Unmarshal(line, &a); err != nil || len(a) != 1 {
			d.writeJSON(w, 400, esErr(400, "illegal_argument_exception", "Malformed action/metadata line"))
			return
		}
		var o op
		for k, v := range a {
			o.action, o.index, o.id = k, v.Index, v.ID
		}
		if o.index == "" {
			o.index = pathIndex
		}
		switch o.action {
		case "index", "create", "update":
			if !sc.Scan() {
				d.writeJSON(w, 400, esErr(400, "illegal_argument_exception", "action without source"))
				return
			}
			o.src = append([]byte(nil), sc.Bytes()...)
		case "delete":
		default:
			d.writeJSON(w, 400, esErr(400, "illegal_argument_exception", "Malformed action/metadata line, expected one of [create, delete, index, update] but found ["+o.action+"]"))
			return
		}
		if o.index == "" {
			d.writeJSON(w, 400, esErr(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;"))
			return
		}
		ops = append(ops, o)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	rec := bulkRecord{At: time.Now(), Gzip: gz, Auth: r.Header.Get("Authorization"), Header: r.Header.Clone()}
	for _, o := range ops {
		rec.IDs = append(rec.IDs, o.id)
		rec.Actions = append(rec.Actions, o.action)
		rec.Indices = append(rec.Indices, o.index)
	}
	d.requests = append(d.requests, rec)
	if d.RequestFault != nil {
		switch st := d.RequestFault(len(d.requests), rec.IDs); {
		case st == -2:
		case st == -1:
			hj, ok := w.(http.Hijacker)
			if ok {
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
		case st != 0:
			d.writeJSON(w, st, esErr(st, "injected", fmt.Sprintf("injected whole-request %d", st)))
			return
		}
	}
	lose := false
	if d.RequestFault != nil && d.RequestFault(len(d.requests), rec.IDs) == -2 {
		lose = true
	}
	items := make([]any, 0, len(ops))
	errorsSeen := false
	for _, o := range ops {
		status, errType, reason := d.applyLocked(o.action, o.index, o.id, o.src)
		res := map[string]any{"_index": o.index, "_id": o.id, "status": status}
		if errType != "" {
			errorsSeen = true
			res["error"] = map[string]any{"type": errType, "reason": reason, "index": o.index}
		} else {
			res["result"] = "created"
			res["_version"] = 1
		}
		items = append(items, map[string]any{o.action: res})
	}
	if lose {
		if hj, ok := w.(http.Hijacker); ok {
			conn, _, _ := hj.Hijack()
			conn.Close()
			return
		}
	}
	d.writeJSON(w, 200, map[string]any{"took": 1, "errors": errorsSeen, "items": items})
}

// applyLocked performs one bulk item and returns its status and error.
func (d *esDouble) applyLocked(action, index, id string, src []byte) (int, string, string) {
	d.seen[id]++
	if d.ItemFault != nil {
		if st, typ := d.ItemFault(id, d.seen[id]); st != 0 {
			return st, typ, fmt.Sprintf("injected %d for [%s]", st, id)
		}
	}
	if isDataStreamName(index) {
		if action != "create" {
			return 400, "illegal_argument_exception", "only write ops with an op_type of create are allowed in data streams"
		}
		var doc map[string]any
		if json.Unmarshal(src, &doc) != nil {
			return 400, "document_parsing_exception", "failed to parse"
		}
		if _, ok := doc["@timestamp"]; !ok {
			return 400, "illegal_argument_exception", "data stream timestamp field [@timestamp] is missing"
		}
	} else if action != "delete" && !json.Valid(src) {
		return 400, "document_parsing_exception", "failed to parse"
	}
	if d.docs[index] == nil {
		d.docs[index] = map[string]json.RawMessage{}
	}
	if id == "" {
		id = fmt.Sprintf("auto-%d", len(d.docs[index]))
	}
	if _, exists := d.docs[index][id]; exists && action == "create" {
		return 409, "version_conflict_engine_exception", fmt.Sprintf("[%s]: version conflict, document already exists (current version [1])", id)
	}
	d.docs[index][id] = append(json.RawMessage(nil), src...)
	return 201, "", ""
}

func (d *esDouble) template(w http.ResponseWriter, r *http.Request, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch r.Method {
	case http.MethodGet:
		t, ok := d.templates[name]
		if !ok {
			d.writeJSON(w, 404, esErr(404, "resource_not_found_exception", "index template matching ["+name+"] not found"))
			return
		}
		d.writeJSON(w, 200, map[string]any{"index_templates": []any{map[string]any{"name": name, "index_template": t}}})
	case http.MethodPut, http.MethodPost:
		raw, _ := io.ReadAll(r.Body)
		var t map[string]any
		if err := json.Unmarshal(raw, &t); err != nil {
			d.writeJSON(w, 400, esErr(400, "x_content_parse_exception", err.Error()))
			return
		}
		if _, ok := t["index_patterns"]; !ok {
			d.writeJSON(w, 400, esErr(400, "action_request_validation_exception", "Validation Failed: 1: index patterns are missing;"))
			return
		}
		d.templates[name] = storedTemplate(t)
		d.puts++
		d.writeJSON(w, 200, map[string]any{"acknowledged": true})
	default:
		d.writeJSON(w, 405, esErr(405, "method_not_allowed", r.Method))
	}
}

// storedTemplate mimics how Elasticsearch returns a template: settings
// nested under "index" with string values, data_stream with its defaults,
// and a modified_date added.
func storedTemplate(t map[string]any) json.RawMessage {
	if tmpl, ok := t["template"].(map[string]any); ok {
		if st, ok := tmpl["settings"].(map[string]any); ok {
			flat := map[string]string{}
			flattenInto(flat, "", st)
			index := map[string]any{}
			for k, v := range flat {
				k = strings.TrimPrefix(strings.TrimPrefix(k, "."), "index.")
				index[k] = v
			}
			tmpl["settings"] = map[string]any{"index": index}
		}
	}
	if ds, ok := t["data_stream"].(map[string]any); ok {
		if _, ok := ds["hidden"]; !ok {
			ds["hidden"] = false
		}
		if _, ok := ds["allow_custom_routing"]; !ok {
			ds["allow_custom_routing"] = false
		}
	}
	t["modified_date_millis"] = time.Now().UnixMilli()
	b, _ := json.Marshal(t)
	return b
}
