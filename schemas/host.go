package schemas

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Host describes the monitored machine (ECS host.*).
type Host struct {
	Hostname     string   // host.hostname
	Name         string   // host.name (defaults to Hostname)
	ID           string   // host.id: /etc/machine-id when readable
	IPs          []string // host.ip: non-loopback interface addresses
	OSType       string   // host.os.type: linux, macos, windows ...
	OSName       string   // host.os.name: "Debian GNU/Linux"
	OSFull       string   // host.os.full: "Debian GNU/Linux 12 (bookworm)"
	OSFamily     string   // host.os.family: "debian"
	OSVersion    string   // host.os.version: "12"
	OSKernel     string   // host.os.kernel: "6.1.0-18-amd64"
	OSPlatform   string   // host.os.platform: "debian"
	Architecture string   // host.architecture: "x86_64"
}

// HostOptions say where the monitored host's identity comes from.
type HostOptions struct {
	// Root is the host's root filesystem as mounted in the sensor (a
	// container's read-only mount of the node's /etc at Root/etc). "" or "/"
	// is the sensor's own root.
	Root string
	// NodeName, when set, is host.name (Kubernetes: the node name from the
	// downward API); host.hostname stays what the host's files say.
	NodeName string
}

// DetectHost reads the local host's identity from os.Hostname,
// /etc/machine-id, os-release(5) and /proc/sys/kernel/osrelease. It never
// fails: whatever cannot be read stays empty (the formatter omits empty
// fields).
func DetectHost() Host { return DetectHostFrom(HostOptions{}) }

// DetectHostFrom reads the identity of the host whose root filesystem is
// o.Root: host.hostname from Root/etc/hostname (else the sensor's own
// hostname), host.id from Root/etc/machine-id, host.os.* from Root's
// os-release. Symbolic links are resolved inside Root, so a host's
// /etc/os-release -> /usr/lib/os-release is read from Root/usr/lib. The
// kernel and architecture are the sensor's: a container shares its host's
// kernel.
func DetectHostFrom(o HostOptions) Host {
	r := hostRoot(o.Root)
	var h Host
	if b, err := r.readFile("/etc/hostname"); err == nil && r.isHost() {
		h.Hostname = firstLine(b)
	}
	if h.Hostname == "" {
		h.Hostname, _ = os.Hostname()
	}
	h.Name = h.Hostname
	if o.NodeName != "" {
		h.Name = o.NodeName
	}
	h.ID = r.machineID()
	h.OSType = osType(runtime.GOOS)
	h.Architecture = archName(runtime.GOARCH)
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.OSKernel = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := r.readFile(p); err == nil {
			h.applyOSRelease(ParseOSRelease(b))
			break
		}
	}
	h.IPs = interfaceIPs()
	return h
}

// hostRoot reads files of a host mounted at a directory.
type hostRoot string

// isHost reports whether the root is a mounted host (not the sensor's own
// /, whose /etc/hostname may be stale where os.Hostname is not).
func (r hostRoot) isHost() bool { return r != "" && filepath.Clean(string(r)) != "/" }

// readFile reads the host path p (absolute, as seen on the host), following
// up to 8 symbolic links of the last element inside the root: an absolute
// link target is taken relative to the root, and ".." never leaves it.
func (r hostRoot) readFile(p string) ([]byte, error) {
	if !r.isHost() {
		return os.ReadFile(p)
	}
	for range 8 {
		full := filepath.Join(string(r), p)
		fi, err := os.Lstat(full)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() || fi.Size() > 1<<16 {
				return nil, fmt.Errorf("%s: not a small regular file", full)
			}
			return os.ReadFile(full)
		}
		target, err := os.Readlink(full)
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(filepath.Dir(p), target)
		}
		p = filepath.Clean("/" + target)
	}
	return nil, fmt.Errorf("%s: too many symbolic links", p)
}

func firstLine(b []byte) string {
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// applyOSRelease fills the host.os fields from parsed os-release content.
func (h *Host) applyOSRelease(rel map[string]string) {
	h.OSName = rel["NAME"]
	h.OSFull = rel["PRETTY_NAME"]
	h.OSVersion = rel["VERSION_ID"]
	h.OSPlatform = rel["ID"]
	h.OSFamily = osFamily(rel["ID"], rel["ID_LIKE"])
}

// osFamily maps os-release ID/ID_LIKE to a distribution family
// (debian, rhel, suse, arch, alpine ...).
func osFamily(id, idLike string) string {
	known := map[string]string{
		"debian": "debian", "ubuntu": "debian", "rhel": "rhel", "centos": "rhel", "fedora": "fedora",
		"suse": "suse", "opensuse": "suse", "sles": "suse", "arch": "arch", "alpine": "alpine", "gentoo": "gentoo",
	}
	for _, cand := range append(strings.Fields(idLike), id) {
		if f, ok := known[cand]; ok {
			return f
		}
	}
	return id
}

// archName maps GOARCH to the uname(2) machine name ECS examples use.
func archName(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "386":
		return "i686"
	case "arm64":
		return "aarch64"
	default:
		return goarch
	}
}

func (r hostRoot) machineID() string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		b, err := r.readFile(p)
		if err != nil {
			continue
		}
		if id := strings.TrimSpace(string(b)); id != "" && len(id) <= 64 {
			return id
		}
	}
	return ""
}

func osType(goos string) string {
	switch goos {
	case "darwin":
		return "macos"
	case "linux", "windows", "android", "ios":
		return goos
	default:
		return "unix"
	}
}

// interfaceIPs lists the non-loopback, non-link-local unicast addresses of the
// host's interfaces (at most 64).
func interfaceIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip := ipn.IP
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() {
			continue
		}
		out = append(out, ip.String())
		if len(out) == 64 {
			break
		}
	}
	return out
}

// ParseOSRelease parses os-release(5) content: KEY=value lines, values
// optionally quoted. Comments and malformed lines are skipped.
func ParseOSRelease(b []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
			if v0 := v; strings.Contains(v0, `\`) {
				r := strings.NewReplacer(`\"`, `"`, `\\`, `\`, `\$`, `$`, "\\`", "`")
				v = r.Replace(v0)
			}
		}
		out[k] = v
	}
	return out
}
