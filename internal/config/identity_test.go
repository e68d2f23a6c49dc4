package config

import (
	"strings"
	"testing"
)

func TestIdentityFromFileAndEnvironment(t *testing.T) {
	t.Setenv("HOST_ROOT", "/ignored-because-the-file-sets-it")
	t.Setenv("NODE_NAME", "node-7")
	t.Setenv("POD_NAME", "netsentinel-x2k9")
	t.Setenv("POD_NAMESPACE", "netsentinel")
	cfg, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ApplyEnv()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	o := cfg.Orchestrator
	if cfg.HostRoot != "/host" || cfg.Labels["env"] != "prod" || strings.Join(cfg.Tags, ",") != "dc1,pci" {
		t.Errorf("host_root %q labels %v tags %v", cfg.HostRoot, cfg.Labels, cfg.Tags)
	}
	if o.Type != "kubernetes" || o.ClusterName != "prod-eu-1" || o.NodeName != "node-7" ||
		o.PodName != "netsentinel-x2k9" || o.PodNamespace != "netsentinel" {
		t.Errorf("orchestrator = %+v", o)
	}

	// Without a file value, HOST_ROOT applies; outside a pod no orchestrator.
	t.Setenv("NODE_NAME", "")
	t.Setenv("POD_NAME", "")
	t.Setenv("POD_NAMESPACE", "")
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	d := Default()
	d.ApplyEnv()
	if d.HostRoot != "/ignored-because-the-file-sets-it" || d.Orchestrator != (OrchestratorConfig{}) {
		t.Errorf("env only: host_root %q orchestrator %+v", d.HostRoot, d.Orchestrator)
	}
}

func TestIdentityValidation(t *testing.T) {
	cases := []struct {
		mut  func(*Config)
		want string
	}{
		{func(c *Config) { c.HostRoot = "host" }, "host_root"},
		{func(c *Config) { c.Labels = map[string]string{"k8s.node": "x"} }, `labels: key "k8s.node"`},
		{func(c *Config) { c.Labels = map[string]string{"rack": strings.Repeat("x", 300)} }, "labels.rack"},
		{func(c *Config) { c.Tags = []string{"ok", ""} }, "tags[1]"},
	}
	for _, tc := range cases {
		c := Default()
		tc.mut(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want an error naming %q", err, tc.want)
		}
	}
}
