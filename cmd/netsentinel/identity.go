package main

import (
	"crypto/rand"
	"fmt"
	"os"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/schemas"
)

// identity is the monitored host (from host_root, the node name) and the
// sensor's own description (agent.*, labels, tags, orchestrator.*).
func identity(cfg *config.Config) (schemas.Host, schemas.Meta) {
	o := cfg.Orchestrator
	host := schemas.DetectHostFrom(schemas.HostOptions{Root: cfg.HostRoot, NodeName: o.NodeName})
	self, _ := os.Hostname()
	meta := schemas.Meta{
		Version: version, AgentID: host.ID, AgentName: self, EphemeralID: newUUID(),
		Dataset: cfg.Dataset, Namespace: cfg.Namespace,
		Labels: cfg.Labels, Tags: cfg.Tags,
		Orchestrator: schemas.Orchestrator{Type: o.Type, ClusterName: o.ClusterName,
			Namespace: o.PodNamespace, ResourceName: o.PodName},
	}
	if o.PodName != "" {
		meta.Orchestrator.ResourceType = "pod"
	}
	return host, meta
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
