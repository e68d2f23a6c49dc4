package config

import (
	"fmt"
	"os"
	"path/filepath"
)

// OrchestratorConfig names the cluster the sensor runs in. The node, pod
// and namespace come from the environment the Kubernetes downward API
// fills (NODE_NAME, POD_NAME, POD_NAMESPACE) unless set here.
type OrchestratorConfig struct {
	// Type is orchestrator.type (default "kubernetes" inside a pod).
	Type string `yaml:"type"`
	// ClusterName is orchestrator.cluster.name.
	ClusterName string `yaml:"cluster_name"`
	// NodeName becomes host.name (default $NODE_NAME).
	NodeName string `yaml:"node_name"`
	// PodName and PodNamespace are orchestrator.resource.name and
	// orchestrator.namespace (default $POD_NAME, $POD_NAMESPACE).
	PodName      string `yaml:"pod_name"`
	PodNamespace string `yaml:"pod_namespace"`
}

// Limits on labels and tags: every event carries them.
const (
	maxLabels   = 32
	maxTags     = 32
	maxLabelLen = 256
)

// applyIdentityEnv fills host_root and the orchestrator fields from the
// environment when the file left them empty.
func (c *Config) applyIdentityEnv() {
	fill := func(dst *string, env string) {
		if *dst == "" {
			*dst = os.Getenv(env)
		}
	}
	fill(&c.HostRoot, "HOST_ROOT")
	o := &c.Orchestrator
	fill(&o.NodeName, "NODE_NAME")
	fill(&o.PodName, "POD_NAME")
	fill(&o.PodNamespace, "POD_NAMESPACE")
	// Kubernetes sets KUBERNETES_SERVICE_HOST in every container.
	if o.Type == "" && (o.ClusterName != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != "") {
		o.Type = "kubernetes"
	}
}

// validateIdentity checks host_root, labels and tags.
func (c *Config) validateIdentity() error {
	if c.HostRoot != "" && !filepath.IsAbs(c.HostRoot) {
		return fmt.Errorf("host_root: %q is not an absolute path", c.HostRoot)
	}
	if len(c.Labels) > maxLabels {
		return fmt.Errorf("labels: %d labels, at most %d", len(c.Labels), maxLabels)
	}
	for k, v := range c.Labels {
		if !labelKey(k) {
			return fmt.Errorf("labels: key %q: use 1-%d of a-z, A-Z, 0-9 and '_' (ECS label keys carry no dots)", k, maxLabelLen)
		}
		if len(v) > maxLabelLen {
			return fmt.Errorf("labels.%s: value longer than %d bytes", k, maxLabelLen)
		}
	}
	if len(c.Tags) > maxTags {
		return fmt.Errorf("tags: %d tags, at most %d", len(c.Tags), maxTags)
	}
	for i, t := range c.Tags {
		if t == "" || len(t) > maxLabelLen {
			return fmt.Errorf("tags[%d]: must be 1-%d bytes", i, maxLabelLen)
		}
	}
	return nil
}

func labelKey(k string) bool {
	if k == "" || len(k) > maxLabelLen {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}
