package schemas

import (
	"bufio"
	"bytes"
	"net"
	"os"
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

// DetectHost reads the local host's identity from os.Hostname,
// /etc/machine-id, os-release(5) and /proc/sys/kernel/osrelease. It never
// fails: whatever cannot be read stays empty (the formatter omits empty
// fields).
func DetectHost() Host {
	var h Host
	h.Hostname, _ = os.Hostname()
	h.Name = h.Hostname
	h.ID = readMachineID()
	h.OSType = osType(runtime.GOOS)
	h.Architecture = archName(runtime.GOARCH)
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.OSKernel = strings.TrimSpace(string(b))
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if b, err := os.ReadFile(p); err == nil {
			h.applyOSRelease(ParseOSRelease(b))
			break
		}
	}
	h.IPs = interfaceIPs()
	return h
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

func readMachineID() string {
	for _, p := range []string{"/etc/machine-id", "/var/lib/dbus/machine-id"} {
		b, err := os.ReadFile(p)
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
