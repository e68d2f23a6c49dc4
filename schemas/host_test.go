package schemas

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDetectHostFromRoot reads a node's identity from a fixture host root,
// the way a container sees the node's /etc mounted at /host/etc: the
// absolute /etc/os-release symlink resolves inside the root, not to the
// sensor's own /usr/lib/os-release.
func TestDetectHostFromRoot(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("testdata", "hostroot"))
	if err != nil {
		t.Fatal(err)
	}
	h := DetectHostFrom(HostOptions{Root: root})
	want := Host{Hostname: "node-7.example.internal", Name: "node-7.example.internal",
		ID: "0f3c1a9e5b7d4e2f8a6c4b2d0e1f3a5c", OSName: "Ubuntu", OSFull: "Ubuntu 24.04.1 LTS",
		OSVersion: "24.04", OSPlatform: "ubuntu", OSFamily: "debian"}
	got := Host{Hostname: h.Hostname, Name: h.Name, ID: h.ID, OSName: h.OSName, OSFull: h.OSFull,
		OSVersion: h.OSVersion, OSPlatform: h.OSPlatform, OSFamily: h.OSFamily}
	if got.Hostname != want.Hostname || got.Name != want.Name || got.ID != want.ID || got.OSName != want.OSName ||
		got.OSFull != want.OSFull || got.OSVersion != want.OSVersion || got.OSPlatform != want.OSPlatform ||
		got.OSFamily != want.OSFamily {
		t.Errorf("host from fixture root:\n got %+v\nwant %+v", got, want)
	}
	if h.OSType != "linux" || h.Architecture == "" || h.OSKernel == "" {
		t.Errorf("kernel facts missing: %+v", h)
	}

	// In Kubernetes the node name from the downward API is host.name.
	k := DetectHostFrom(HostOptions{Root: root, NodeName: "node-7"})
	if k.Name != "node-7" || k.Hostname != "node-7.example.internal" {
		t.Errorf("with NodeName: name %q hostname %q", k.Name, k.Hostname)
	}
}

// TestHostRootStaysInside: links that climb out of the root, and roots
// lacking files, leave fields empty instead of reading the sensor's own.
func TestHostRootStaysInside(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// ../../../../etc/machine-id from /etc resolves to the root's own
	// /etc/machine-id, which does not exist: no id, not the sensor's.
	if err := os.Symlink("../../../../../etc/machine-id", filepath.Join(root, "etc", "machine-id")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("os-release", filepath.Join(root, "etc", "os-release")); err != nil { // a loop
		t.Fatal(err)
	}
	h := DetectHostFrom(HostOptions{Root: root})
	if h.ID != "" || h.OSName != "" {
		t.Errorf("read outside the host root: id %q os %q", h.ID, h.OSName)
	}
	if own, _ := os.Hostname(); h.Hostname != own {
		t.Errorf("without Root/etc/hostname, host.hostname = %q, want the sensor's %q", h.Hostname, own)
	}
}
