// Package hostile runs the built netsentinel binary over a fake /proc whose
// processes carry hostile names and command lines (newlines, ANSI escapes,
// invalid UTF-8, megabyte lengths) and whose files are truncated or
// malformed, and checks what users rely on: every output line is one valid
// JSON object, the report is valid JSON, and nothing panics.
package hostile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsentinel-hostile")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "netsentinel")
	build := exec.Command("go", "build", "-o", binary, "./cmd/netsentinel")
	build.Dir = repoRoot()
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building netsentinel:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func repoRoot() string {
	wd, _ := os.Getwd()
	for d := wd; d != "/"; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil &&
			bytes.HasPrefix(b, []byte("module github.com/netsentinel/netsentinel\n")) {
			return d
		}
	}
	return wd
}

// hostileProc is a fake process that owns a real listening socket.
type hostileProc struct {
	pid     int
	comm    string   // as in /proc/PID/stat (the kernel allows ')' and newlines)
	name    string   // Name: in status
	cmdline []string // NUL-separated in cmdline
	exe     string   // symlink target
}

func write(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeProc builds a /proc tree: the machine-wide files copied from the real
// /proc, the hostile processes, and some damaged ones.
func fakeProc(t *testing.T, procs []hostileProc, inodes []uint64) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "proc")
	for _, f := range []string{"stat", "uptime", "meminfo", "loadavg"} {
		if b, err := os.ReadFile(filepath.Join("/proc", f)); err == nil {
			write(t, filepath.Join(root, f), b)
		}
	}
	self, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	rest := self[bytes.LastIndexByte(self, ')')+1:] // " R ppid ..." after the comm
	for i, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(p.pid))
		write(t, filepath.Join(dir, "stat"), append([]byte(fmt.Sprintf("%d (%s)", p.pid, p.comm)), rest...))
		write(t, filepath.Join(dir, "status"), []byte(fmt.Sprintf("Name:\t%s\nState:\tS (sleeping)\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", p.name)))
		write(t, filepath.Join(dir, "cmdline"), []byte(strings.Join(p.cmdline, "\x00")+"\x00"))
		if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p.exe, filepath.Join(dir, "exe")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(fmt.Sprintf("socket:[%d]", inodes[i]), filepath.Join(dir, "fd", "3")); err != nil {
			t.Fatal(err)
		}
	}
	// Truncated and malformed processes and tables.
	write(t, filepath.Join(root, "7001", "stat"), []byte("7001 (trunc"))
	write(t, filepath.Join(root, "7002", "stat"), append([]byte("7002 (ok)"), rest...))
	write(t, filepath.Join(root, "7002", "status"), []byte("Name:\tx\nPPid:\tnot-a-number\nUid:\t1\n"))
	write(t, filepath.Join(root, "7003", "stat"), []byte{})
	write(t, filepath.Join(root, "7004", "stat"), append([]byte("7004 (\xff\xfe\x1b[2J)"), rest[:len(rest)/2]...))
	write(t, filepath.Join(root, "7004", "status"), []byte("Name:\t\xff\nUid:\t0\t0\t0\t0\n"))
	write(t, filepath.Join(root, "net", "tcp"), []byte("  sl  local_address rem_address   st\n   0: ZZZZ:0050 00000000:0000 0A\n   1: 0100007F:\n"))
	write(t, filepath.Join(root, "net", "arp"), []byte("IP address HW type\n10.0.0.1 0x1 0x2 zz:zz dev\n\xff\xff\n"))
	write(t, filepath.Join(root, "net", "route"), []byte("Iface\tDestination\tGateway\n\x1b[31m\t0\n"))
	write(t, filepath.Join(root, "net", "snmp"), []byte("Tcp: RtoAlgorithm\nTcp: x y z\n"))
	write(t, filepath.Join(root, "net", "dev"), bytes.Repeat([]byte("eth0: 1 2 3\n"), 3))
	return root
}

// listen binds real loopback listeners on suspicious ports (skipping ones in
// use) and returns them with their socket inodes.
func listen(t *testing.T, n int) ([]net.Listener, []uint64) {
	t.Helper()
	var lns []net.Listener
	var inodes []uint64
	for _, port := range []int{31337, 45560, 54321, 12345, 14444, 4545, 5555} {
		if len(lns) == n {
			break
		}
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		f, err := ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		f.Close()
		t.Cleanup(func() { ln.Close() })
		lns = append(lns, ln)
		inodes = append(inodes, st.Ino)
	}
	if len(lns) < n {
		t.Skipf("SKIPPING: only %d of the suspicious ports are free on loopback", len(lns))
	}
	return lns, inodes
}

// checkNDJSON fails unless every line is one JSON object in valid UTF-8
// with no raw control characters; it returns the objects.
func checkNDJSON(t *testing.T, what string, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 16<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if !utf8.Valid(line) {
			t.Errorf("%s line %d: invalid UTF-8", what, n)
		}
		for _, c := range line {
			if c < 0x20 {
				t.Errorf("%s line %d: raw control byte %#x", what, n, c)
				break
			}
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("%s line %d is not one JSON object: %v: %.300q", what, n, err, line)
			continue
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return out
}

func TestHostileProcessStringsAndMalformedProc(t *testing.T) {
	mb := strings.Repeat("A\x1b[31m\n", (1<<20)/8)
	procs := []hostileProc{
		{pid: 6001, comm: "evil\n{\"x\":1}", name: "evil\\n", cmdline: []string{"/bin/sh", "-c", "echo 'line1\nline2'\r\n\x1b[2J\x1b]0;title\x07"}, exe: "/tmp/evil\nbinary"},
		{pid: 6002, comm: "bad\xff\xfeutf", name: "bad\xc3\x28", cmdline: []string{"\xed\xa0\x80\xf0\x28\x8c\xbc", "\x00\x01\x7f", "\u2028\u2029"}, exe: "/tmp/\xff\xfe"},
		{pid: 6003, comm: ") (x) R 1", name: strings.Repeat("N", 5000), cmdline: []string{mb, mb}, exe: "/" + strings.Repeat("d/", 2000) + "x"},
	}
	_, inodes := listen(t, len(procs))
	root := fakeProc(t, procs, inodes)

	for _, format := range []string{"ecs", "native"} {
		t.Run(format, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "c.yaml")
			if err := os.WriteFile(cfg, []byte("destroy_events: false\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "alerts.ndjson")
			report := filepath.Join(dir, "report.json")
			cmd := exec.Command(binary, "--once", "-c", cfg, "--host-proc", root, "--format", format,
				"--sink", "stdout", "--sink", "file:"+file, "-o", report)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("netsentinel: %v\n%s", err, tail(stderr.String()))
			}
			if strings.Contains(stderr.String(), "panic") {
				t.Fatalf("a panic was logged:\n%s", tail(stderr.String()))
			}
			events := checkNDJSON(t, "stdout", stdout.Bytes())
			if os.Getenv("HOSTILE_DEBUG") != "" {
				for _, l := range bytes.Split(stdout.Bytes(), []byte("\n")) {
					t.Logf("%.600s", l)
				}
			}
			fb, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			fileEvents := checkNDJSON(t, "file sink", fb)
			if len(fileEvents) != len(events) {
				t.Errorf("file sink %d events, stdout %d", len(fileEvents), len(events))
			}
			// Each hostile process's listener is alerted, with its pid.
			seen := map[float64]bool{}
			for _, e := range events {
				var pid any
				if p, ok := e["process"].(map[string]any); ok {
					pid = p["pid"]
				} else {
					pid = e["pid"]
				}
				if f, ok := pid.(float64); ok {
					seen[f] = true
				}
			}
			for _, p := range procs {
				if !seen[float64(p.pid)] {
					t.Errorf("no alert names hostile process %d (%d events)", p.pid, len(events))
				}
			}
			rb, err := os.ReadFile(report)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(rb) || !utf8.Valid(rb) {
				t.Error("report is not valid JSON in UTF-8")
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
