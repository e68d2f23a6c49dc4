package dashboard

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/tmuxtest"
)

// ratPorts are suspicious_port's default ports; the listeners take the first
// free ones.
const ratPorts = "4444,31337,12345,54321,45560,14444,4545,5555,3333,1080,6666,6667"

// hostileName is the listeners' executable file name, so their process name
// (comm): it would turn the screen red if printed raw.
const hostileName = "\x1b[31mEVIL\x1b[0m"

// hostileArg0 is their argv[0]: a window-title escape, a screen clear,
// invalid UTF-8 and 5,000 more bytes.
var hostileArg0 = "\x1b]0;pwned\x07\x1b[2J\xff" + strings.Repeat("A", 5000)

// startListeners starts n listeners on RAT ports on loopback, each a copy of
// this test binary named hostileName, and returns their ports.
func startListeners(t *testing.T, n int) []string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), hostileName)
	copyFile(t, self, exe)
	var ports []string
	for i := 0; i < n; i++ {
		free := []string{}
		for _, p := range strings.Split(ratPorts, ",") {
			if !contains(ports, p) {
				free = append(free, p)
			}
		}
		cmd := exec.Command(exe)
		cmd.Args = []string{hostileArg0, "listener"}
		cmd.Env = append(os.Environ(), listenerEnv+"="+strings.Join(free, ","))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil {
			t.Fatalf("listener did not start: %v", err)
		}
		ports = append(ports, strings.TrimSpace(line))
	}
	return ports
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// selectedLine is the screen row of the selected event.
func selectedLine(screen []string) string {
	for _, l := range screen {
		if strings.HasPrefix(l, ">") {
			return l
		}
	}
	return ""
}

// fitsScreen: the header is on the first row and the key bar on the last,
// so nothing wrapped or scrolled.
func fitsScreen(h int) func([]string) bool {
	return func(s []string) bool {
		return len(s) == h && strings.Contains(s[0], "NetSentinel") && strings.Contains(s[h-1], "q quit") &&
			strings.Contains(strings.Join(s, "\n"), "Threat events")
	}
}

func TestDashboardInTmux(t *testing.T) {
	tmuxtest.Require(t)
	ports := startListeners(t, 2)
	dir := t.TempDir()
	// Until q, so in continuous mode: one report per window, report-TIME.json.
	report, alerts, logf := filepath.Join(dir, "report.json"), filepath.Join(dir, "alerts.ndjson"), filepath.Join(dir, "ns.log")
	s := tmuxtest.Start(t, 120, 40, nil, binary, "--dashboard", "--interval", "500ms", "-o", report,
		"--sink", "file:"+alerts, "--log-file", logf)

	// The alerts, with the hostile process name shown escaped.
	const escaped = `\x1b[31mEVIL`
	s.WaitText(30*time.Second, "suspicious_port", "T1571 Non-Standard Port", "on 127.0.0.1:"+ports[0], "on 127.0.0.1:"+ports[1], escaped, "RISKY")
	s.WaitFor("the file sink's delivery count", 30*time.Second, func(sc []string) bool {
		return strings.Contains(strings.Join(sc, "\n"), "file:"+alerts+" delivered ") && !strings.Contains(strings.Join(sc, "\n"), " delivered 0 ")
	})

	// Filter on the hostile name: only our two listeners' events.
	s.Keys("/")
	s.Literal("evil")
	s.Keys("Enter")
	screen := s.WaitText(10*time.Second, `filter "evil"`)
	if n := strings.Count(strings.Join(screen, "\n"), escaped); n < 2 {
		t.Errorf("filter evil: %d rows name the listeners, want 2:\n%s", n, strings.Join(screen, "\n"))
	}

	// Minimum severity: the listeners' alerts are HIGH.
	s.Keys("4")
	s.WaitText(10*time.Second, "min CRIT", "no events match")
	s.Keys("3")
	s.WaitFor("the HIGH events again", 10*time.Second, func(sc []string) bool {
		return strings.Contains(strings.Join(sc, "\n"), "min HIGH") && strings.Contains(selectedLine(sc), escaped)
	})

	// j/k move the selection between the two events.
	first := selectedLine(s.Screen())
	s.Keys("j")
	s.WaitFor("the selection to move down", 10*time.Second, func(sc []string) bool {
		return selectedLine(sc) != first && strings.Contains(selectedLine(sc), escaped)
	})
	s.Keys("k")
	s.WaitFor("the selection to move back up", 10*time.Second, func(sc []string) bool { return selectedLine(sc) == first })

	// Enter: the detail pane with evidence and the escaped arguments.
	s.Keys("Enter")
	s.WaitText(10*time.Second, "Event detail", "Evidence:", "listening: true", `Args: \x1b]0;pwned\x07\x1b[2J`, "Recommendation:")
	if title := s.Title(); strings.Contains(title, "pwned") {
		t.Errorf("a process argument set the terminal title to %q", title)
	}
	s.Keys("Escape")
	s.WaitFor("the detail pane to close", 10*time.Second, func(sc []string) bool {
		return !strings.Contains(strings.Join(sc, "\n"), "Event detail")
	})

	// Pause and help.
	s.Keys("p")
	s.WaitText(10*time.Second, "PAUSED")
	s.Keys("p")
	s.WaitText(10*time.Second, "LIVE")
	s.Keys("?")
	s.WaitText(10*time.Second, "minimum severity shown")
	s.Keys("?")
	s.WaitFor("the help to close", 10*time.Second, func(sc []string) bool {
		return !strings.Contains(strings.Join(sc, "\n"), "minimum severity shown")
	})

	// Resize to 80x24 and back: the layout follows, nothing wraps.
	s.Resize(80, 24)
	s.WaitFor("the 80x24 layout", 10*time.Second, fitsScreen(24))
	s.Resize(120, 40)
	s.WaitFor("the 120x40 layout", 10*time.Second, fitsScreen(40))

	// q: the sinks drain and the report is written, as without the dashboard.
	s.Keys("q")
	status, last := s.WaitExit(60 * time.Second)
	if status != 0 {
		t.Fatalf("exit status %d; screen:\n%s", status, strings.Join(last, "\n"))
	}
	if !strings.Contains(strings.Join(last, "\n"), "dashboard closed; report "+filepath.Join(dir, "report-*.json")) {
		t.Errorf("no closing line after the dashboard:\n%s", strings.Join(last, "\n"))
	}
	checkReport(t, finalReport(t, dir, "report"), ports)
	sent, err := os.ReadFile(alerts)
	if err != nil || !strings.Contains(string(sent), `"suspicious_port"`) {
		t.Errorf("file sink %s: %v, %d bytes, no suspicious_port alert", alerts, err, len(sent))
	}
	logs, err := os.ReadFile(logf)
	if err != nil || !strings.Contains(string(logs), "report written") {
		t.Errorf("log file %s: %v; want the logs there (report written):\n%s", logf, err, logs)
	}
}

// finalReport is the last of the window reports stem-TIME.json in dir.
func finalReport(t *testing.T, dir, stem string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, stem+"-*.json"))
	if len(files) == 0 {
		t.Fatalf("no report %s-*.json in %s", stem, dir)
	}
	sort.Strings(files)
	return files[len(files)-1]
}

// checkReport: the final report lists the listeners' alerts and the file
// sink's deliveries.
func checkReport(t *testing.T, path string, ports []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	var rep struct {
		Sinks map[string]struct {
			Delivered uint64 `json:"delivered"`
		} `json:"sink_statistics"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	for name, st := range rep.Sinks {
		if strings.HasPrefix(name, "file:") && st.Delivered == 0 {
			t.Errorf("report: sink %s delivered 0", name)
		}
	}
	if len(rep.Sinks) != 1 {
		t.Errorf("report sinks = %v, want the file sink only", rep.Sinks)
	}
	for _, p := range ports {
		if !strings.Contains(string(data), "127.0.0.1:"+p) {
			t.Errorf("report does not mention the listener on %s", p)
		}
	}
}

// NO_COLOR: the same screen without a single colour sequence.
func TestDashboardNoColor(t *testing.T) {
	tmuxtest.Require(t)
	dir := t.TempDir()
	s := tmuxtest.Start(t, 100, 30, []string{"NO_COLOR=1"}, binary, "--dashboard", "--interval", "500ms",
		"-o", filepath.Join(dir, "r.json"), "--log-file", filepath.Join(dir, "l.log"))
	s.WaitText(30*time.Second, "NetSentinel", "polls 1", "sinks none")
	if esc := s.ScreenEscapes(); strings.Contains(esc, "\x1b[3") || strings.Contains(esc, "\x1b[4") || strings.Contains(esc, ";5;") {
		t.Errorf("NO_COLOR screen carries colours: %q", esc)
	}
	s.Keys("C-c")
	if status, last := s.WaitExit(60 * time.Second); status != 0 {
		t.Errorf("ctrl+c: exit status %d:\n%s", status, strings.Join(last, "\n"))
	}
	finalReport(t, dir, "r")
}

// Closing the terminal (ssh dropped, window closed) ends the run as q does:
// the sinks drain, the final report is written and the sensor exits; it
// used to run on for ever with no screen (SIGHUP is "reload").
func TestDashboardHangup(t *testing.T) {
	tmuxtest.Require(t)
	dir := t.TempDir()
	logf := filepath.Join(dir, "l.log")
	s := tmuxtest.Start(t, 100, 30, nil, binary, "--dashboard", "--interval", "500ms",
		"-o", filepath.Join(dir, "r.json"), "--log-file", logf)
	s.WaitText(30*time.Second, "NetSentinel", "polls 1")
	s.Hangup(60 * time.Second)
	finalReport(t, dir, "r")
	logs, err := os.ReadFile(logf)
	if err != nil || !strings.Contains(string(logs), "report written") || !strings.Contains(string(logs), `"final": true`) {
		t.Errorf("log file %s: %v; want the final report written:\n%s", logf, err, logs)
	}
}

// Without a terminal, or with the stdout sink, --dashboard is refused with
// a clear message and exit status 2, before anything runs.
func TestDashboardRefusals(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--dashboard"}, "--dashboard needs a terminal on stdout"},
		{[]string{"--dashboard", "--sink", "stdout"}, "the stdout sink cannot be used"},
		{[]string{"--dashboard", "--sink", "file:" + filepath.Join(dir, "a"), "--sink", "stdout"}, "the stdout sink cannot be used"},
	} {
		cmd := exec.Command(binary, append(c.args, "-o", filepath.Join(dir, "r.json"))...)
		out, err := cmd.CombinedOutput() // stdout is a pipe
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), c.want) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("%v: err %v, output %q; want exit 2 and one line saying %q", c.args, err, out, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "r.json")); err == nil {
		t.Error("a refused run wrote a report")
	}
}
