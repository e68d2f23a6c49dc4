package scenarios

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// unprivilegedUID is the user the unprivileged sensor runs as (nobody): it
// owns none of the attack's processes, which run as root.
const unprivilegedUID = 65534

// mode is how the sensor runs in one pass of a scenario: as root (every
// process's fds readable, so every socket has an owner), or as an
// unprivileged user without capabilities while the attack runs as root, the
// product's promise (see README "Running unprivileged").
type mode struct {
	Privileged bool
}

func (m mode) String() string {
	if m.Privileged {
		return "root"
	}
	return "unprivileged"
}

// modes are the sensor modes every scenario runs in, root first.
var modes = []mode{{Privileged: true}, {Privileged: false}}

// eachMode runs fn as one subtest per sensor mode ("root", "unprivileged").
func eachMode(t *testing.T, fn func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.String(), func(t *testing.T) { fn(t, m) })
	}
}

// canSee reports whether the sensor in this mode can observe the scenario.
// For the unprivileged mode it records a results row saying why not and
// returns false: the caller returns without asserting anything.
func (m mode) canSee(t *testing.T, why string) bool {
	t.Helper()
	return m.canSeeAs(t, scenarioName(t), why)
}

// canSeeAs is canSee for a scenario whose results name is not its test's.
func (m mode) canSeeAs(t *testing.T, scenario, why string) bool {
	t.Helper()
	if m.Privileged {
		return true
	}
	t.Logf("not observable by an unprivileged sensor: %s", why)
	record(result{Scenario: scenario, Mode: m.String(), Detected: "not visible", Technique: "—", Latency: "—", Note: why})
	return false
}

// scenarioName is the scenario a mode subtest belongs to: the test path
// without its mode element, last element first ("TestTor/tor_daemon/root"
// → "tor_daemon").
func scenarioName(t *testing.T) string {
	parts := strings.Split(t.Name(), "/")
	if n := len(parts); n > 1 && (parts[n-1] == "root" || parts[n-1] == "unprivileged") {
		parts = parts[:n-1]
	}
	return strings.TrimPrefix(parts[len(parts)-1], "Test")
}

// sensorDir returns a directory for the sensor's config, resolv.conf, relay
// list and report that the sensor's user can read and write.
func sensorDir(t *testing.T, m mode) string {
	t.Helper()
	if m.Privileged {
		return t.TempDir()
	}
	// t.TempDir's parents are 0700 root: make one the unprivileged user can
	// reach, removed at cleanup.
	dir, err := os.MkdirTemp("", "netsentinel-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sensor")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sub, unprivilegedUID, unprivilegedUID); err != nil {
		t.Fatal(err)
	}
	return sub
}

// chownForSensor hands files the test wrote for the sensor to its user.
func chownForSensor(t *testing.T, m mode, paths ...string) {
	t.Helper()
	if m.Privileged {
		return
	}
	for _, p := range paths {
		if err := os.Chown(p, unprivilegedUID, unprivilegedUID); err != nil {
			t.Fatal(err)
		}
	}
}

// sensorCommand prefixes the sensor's command line so that, unprivileged, it
// runs as unprivilegedUID with no capabilities at all (none inheritable,
// none in the bounding set, no new privileges).
func sensorCommand(m mode, bin string, args []string) (string, []string) {
	if m.Privileged {
		return bin, args
	}
	uid := "65534"
	pre := []string{"--reuid=" + uid, "--regid=" + uid, "--clear-groups", "--inh-caps=-all",
		"--bounding-set=-all", "--no-new-privs", bin}
	return "setpriv", append(pre, args...)
}

// checkSensorIdentity asserts that the running sensor (a descendant of the
// nsenter the test started) has the mode's identity: unprivileged means uid
// 65534 and no effective, permitted or bounding capabilities.
func checkSensorIdentity(t *testing.T, m mode, root int) {
	t.Helper()
	pid := findDescendant(root, "netsentinel", 4)
	if pid == 0 {
		t.Fatalf("no netsentinel process under pid %d", root)
	}
	status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(string(status), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	if m.Privileged {
		if !strings.HasPrefix(fields["Uid"], "0 ") {
			t.Fatalf("root sensor runs with Uid %q", fields["Uid"])
		}
		return
	}
	if want := "65534 65534 65534 65534"; fields["Uid"] != want {
		t.Fatalf("unprivileged sensor runs with Uid %q, want %q", fields["Uid"], want)
	}
	for _, c := range []string{"CapEff", "CapPrm", "CapBnd", "CapAmb"} {
		if fields[c] != "0000000000000000" {
			t.Fatalf("unprivileged sensor has %s %s, want none", c, fields[c])
		}
	}
}

// findDescendant returns the first process named comm among pid and its
// descendants up to depth levels, or 0.
func findDescendant(pid int, comm string, depth int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err == nil && strings.TrimSpace(string(b)) == comm {
		return pid
	}
	if depth == 0 {
		return 0
	}
	kids, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
	for _, k := range strings.Fields(string(kids)) {
		if c, err := strconv.Atoi(k); err == nil {
			if d := findDescendant(c, comm, depth-1); d != 0 {
				return d
			}
		}
	}
	return 0
}
