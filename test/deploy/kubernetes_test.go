package deploy

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/test/sensortest"
)

var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

// cliBinary is netsentinel built from this checkout (once per test binary).
func cliBinary(t *testing.T) string {
	t.Helper()
	cliOnce.Do(func() {
		var dir string
		cliPath, dir, cliErr = sensortest.BuildBinary("netsentinel-deploy")
		cleanup = append(cleanup, dir)
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// manifests holds every object of deploy/kubernetes, decoded strictly.
type manifests struct {
	namespaces  []corev1.Namespace
	accounts    []corev1.ServiceAccount
	configMaps  []corev1.ConfigMap
	secrets     []corev1.Secret
	daemonSets  []appsv1.DaemonSet
	deployments []appsv1.Deployment
}

// decodeInto decodes one YAML document strictly (an unknown or misspelt
// field is an error) into a new T and appends it.
func decodeInto[T any](doc []byte, list *[]T) error {
	var v T
	if err := yaml.UnmarshalStrict(doc, &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

func loadManifests(t *testing.T, dir string) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var m manifests
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				err = decodeInto(doc, &m.namespaces)
			case "v1 ServiceAccount":
				err = decodeInto(doc, &m.accounts)
			case "v1 ConfigMap":
				err = decodeInto(doc, &m.configMaps)
			case "v1 Secret":
				err = decodeInto(doc, &m.secrets)
			case "apps/v1 DaemonSet":
				err = decodeInto(doc, &m.daemonSets)
			case "apps/v1 Deployment":
				err = decodeInto(doc, &m.deployments)
			default:
				err = fmt.Errorf("unexpected %s %s", tm.APIVersion, tm.Kind)
			}
			if err != nil {
				t.Errorf("%s #%d: %v", filepath.Base(f), i, err)
			}
		}
	}
	return m
}

// TestKubernetesStrictDecodingCatchesTypos guards the decoder the manifest
// test relies on.
func TestKubernetesStrictDecodingCatchesTypos(t *testing.T) {
	var ds []appsv1.DaemonSet
	doc := []byte("apiVersion: apps/v1\nkind: DaemonSet\nspec:\n  template:\n    spec:\n      hostNetwrok: true\n")
	if err := decodeInto(doc, &ds); err == nil || !strings.Contains(err.Error(), "hostNetwrok") {
		t.Errorf("misspelt field accepted: %v", err)
	}
}

// TestKubernetesManifests decodes every manifest into the Kubernetes API
// types and checks what the DaemonSet and the sidecar promise.
func TestKubernetesManifests(t *testing.T) {
	m := loadManifests(t, filepath.Join(repo, "deploy", "kubernetes"))
	if len(m.namespaces) != 1 || len(m.accounts) != 1 || len(m.configMaps) != 1 || len(m.secrets) != 1 ||
		len(m.daemonSets) != 1 || len(m.deployments) != 1 {
		t.Fatalf("want one namespace, service account, ConfigMap, Secret, DaemonSet and sidecar Deployment; got %d %d %d %d %d %d",
			len(m.namespaces), len(m.accounts), len(m.configMaps), len(m.secrets), len(m.daemonSets), len(m.deployments))
	}
	ns := m.namespaces[0].Name
	cm, secret := m.configMaps[0], m.secrets[0]

	// Every config in the ConfigMap passes the config check.
	for key, body := range cm.Data {
		path := filepath.Join(t.TempDir(), key)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(cliBinary(t), "config", "check", path).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("ConfigMap %s: netsentinel config check: %v: %s", key, err, out)
		}
	}
	if len(secret.StringData)+len(secret.Data) == 0 {
		t.Error("the Secret holds no credentials")
	}

	for _, pod := range []struct {
		name string
		meta metav1.ObjectMeta
		spec corev1.PodSpec
	}{{"daemonset", m.daemonSets[0].ObjectMeta, m.daemonSets[0].Spec.Template.Spec},
		{"sidecar", m.deployments[0].ObjectMeta, m.deployments[0].Spec.Template.Spec}} {
		t.Run(pod.name, func(t *testing.T) {
			spec := pod.spec
			if pod.meta.Namespace != ns || spec.ServiceAccountName != m.accounts[0].Name {
				t.Errorf("namespace %q service account %q", pod.meta.Namespace, spec.ServiceAccountName)
			}
			i := slices.IndexFunc(spec.Containers, func(c corev1.Container) bool { return c.Name == "netsentinel" })
			if i < 0 {
				t.Fatal("no netsentinel container")
			}
			c := spec.Containers[i]
			checkCommon(t, c, spec, cm.Name, secret.Name)
			checkProbeAddress(t, c, spec, cm)
			if pod.name == "daemonset" {
				checkDaemonSet(t, c, spec)
			} else {
				sc := c.SecurityContext
				if spec.HostNetwork || spec.HostPID || sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
					t.Errorf("the sidecar must stay in the pod's namespaces as a non-root user (mode a)")
				}
			}
		})
	}
}

// checkCommon: config from the ConfigMap, credentials from the Secret, the
// node name from the downward API, probes on /healthz and /readyz, sized
// resources.
func checkCommon(t *testing.T, c corev1.Container, spec corev1.PodSpec, cmName, secretName string) {
	t.Helper()
	hasVolume := func(pred func(corev1.Volume) bool) bool { return slices.ContainsFunc(spec.Volumes, pred) }
	if !hasVolume(func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == cmName }) {
		t.Errorf("config does not come from ConfigMap %s", cmName)
	}
	if !slices.ContainsFunc(c.EnvFrom, func(e corev1.EnvFromSource) bool {
		return e.SecretRef != nil && e.SecretRef.Name == secretName
	}) {
		t.Errorf("credentials do not come from Secret %s", secretName)
	}
	if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName"
	}) {
		t.Error("NODE_NAME does not come from the downward API (spec.nodeName)")
	}
	for _, p := range []struct {
		probe *corev1.Probe
		path  string
	}{{c.LivenessProbe, "/healthz"}, {c.ReadinessProbe, "/readyz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path {
			t.Errorf("no HTTP probe on %s", p.path)
		}
	}
	r := c.Resources
	if r.Requests.Memory().IsZero() || r.Limits.Memory().IsZero() || r.Requests.Cpu().IsZero() ||
		r.Limits.Memory().Cmp(*r.Requests.Memory()) < 0 {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit above the request", r)
	}
	// The measured peak (113 MB RSS, test/memory) must fit under the limit.
	if r.Limits.Memory().Value() < 150<<20 {
		t.Errorf("memory limit %s is below the measured peak RSS with headroom (150 MiB)", r.Limits.Memory())
	}
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("securityContext %+v: want no privilege escalation, a read-only root and every capability dropped", sc)
	}
}

// checkDaemonSet: host network and PIDs, read-only host /proc and /etc, and
// the mode (b) securityContext: uid 0 with exactly the two capabilities.
func checkDaemonSet(t *testing.T, c corev1.Container, spec corev1.PodSpec) {
	t.Helper()
	if !spec.HostNetwork || !spec.HostPID {
		t.Errorf("hostNetwork %v hostPID %v", spec.HostNetwork, spec.HostPID)
	}
	for host, mount := range map[string]string{"/proc": "/host/proc", "/etc": "/host/etc"} {
		vi := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil && v.HostPath.Path == host })
		if vi < 0 {
			t.Errorf("no hostPath volume for %s", host)
			continue
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == spec.Volumes[vi].Name && m.MountPath == mount && m.ReadOnly
		}) {
			t.Errorf("host %s is not mounted read-only at %s", host, mount)
		}
	}
	sc := c.SecurityContext
	add := []string{}
	if sc != nil && sc.Capabilities != nil {
		for _, a := range sc.Capabilities.Add {
			add = append(add, string(a))
		}
	}
	slices.Sort(add)
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || !slices.Equal(add, []string{"DAC_READ_SEARCH", "SYS_PTRACE"}) {
		t.Errorf("mode (b) securityContext: want runAsUser 0 adding exactly SYS_PTRACE and DAC_READ_SEARCH, got %+v", sc)
	}
}

// checkProbeAddress: the probes ask where the mounted config's http.address
// listens: 127.0.0.1 from the node's network namespace (hostNetwork), or the
// pod's IP, which a 0.0.0.0 listener answers.
func checkProbeAddress(t *testing.T, c corev1.Container, spec corev1.PodSpec, cm corev1.ConfigMap) {
	t.Helper()
	key := "netsentinel.yaml"
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Name {
			for _, it := range v.ConfigMap.Items {
				if it.Path == "netsentinel.yaml" {
					key = it.Key
				}
			}
		}
	}
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte(cm.Data[key]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("ConfigMap %s: %v", key, err)
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Address)
	if err != nil {
		t.Fatalf("ConfigMap %s: http.address %q: %v", key, cfg.HTTP.Address, err)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		if p.HTTPGet.Port.String() != port {
			t.Errorf("probe %s on port %s, the config (%s) listens on %s", p.HTTPGet.Path, p.HTTPGet.Port.String(), key, cfg.HTTP.Address)
		}
		switch {
		case p.HTTPGet.Host == "127.0.0.1" && (host != "127.0.0.1" || !spec.HostNetwork):
			t.Errorf("probe asks 127.0.0.1 but the endpoint is %s (hostNetwork %v)", cfg.HTTP.Address, spec.HostNetwork)
		case p.HTTPGet.Host == "" && host != "0.0.0.0" && host != "":
			t.Errorf("probe asks the pod IP but the endpoint listens on %s only", cfg.HTTP.Address)
		}
	}
}
