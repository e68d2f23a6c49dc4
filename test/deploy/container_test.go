package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/sensortest"
)

// dockerfile is what the image's contract is made of.
type dockerfile struct {
	buildCmd   string            // the build stage's RUN ... go build ... -o /out/netsentinel
	buildOut   string            // /out/netsentinel
	args       map[string]string // ARG defaults
	stateRun   []string          // RUN install -d -m MODE -o UID -g GID DIR
	stateCopy  []string          // COPY --from=build --chown=U:G SRC DEST
	user       string            // USER
	workdir    string            // WORKDIR
	env        []string          // ENV K=V
	entrypoint []string
	cmd        []string
	health     []string // HEALTHCHECK CMD [...]
}

// parseDockerfile reads the Dockerfile's instructions (continuation lines
// joined, comments dropped) into the contract the test reproduces.
func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	cur := ""
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			continue
		}
		if strings.HasSuffix(l, `\`) {
			cur += strings.TrimSuffix(l, `\`) + " "
			continue
		}
		if line := strings.TrimSpace(cur + l); line != "" {
			lines = append(lines, line)
		}
		cur = ""
	}
	d := dockerfile{args: map[string]string{}}
	stage := 0
	jsonArray := func(s string) []string {
		var a []string
		if err := json.Unmarshal([]byte(s), &a); err != nil {
			t.Fatalf("Dockerfile: %q is not an exec-form JSON array: %v", s, err)
		}
		return a
	}
	outRE := regexp.MustCompile(`-o (\S+) \./cmd/netsentinel`)
	for _, line := range lines {
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM":
			stage++
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			d.args[k] = v
		case "RUN":
			if m := outRE.FindStringSubmatch(rest); m != nil && strings.Contains(rest, "go build") {
				d.buildCmd, d.buildOut = rest, m[1]
			}
			if strings.HasPrefix(rest, "install -d ") {
				d.stateRun = strings.Fields(rest)
			}
		case "COPY":
			if stage == 2 && strings.Contains(rest, "--chown=") {
				d.stateCopy = strings.Fields(rest)
			}
		case "USER":
			d.user = rest
		case "WORKDIR":
			if stage == 2 {
				d.workdir = rest
			}
		case "ENV":
			d.env = append(d.env, strings.Fields(rest)...)
		case "ENTRYPOINT":
			d.entrypoint = jsonArray(rest)
		case "CMD":
			d.cmd = jsonArray(rest)
		case "HEALTHCHECK":
			if i := strings.Index(rest, "CMD "); i >= 0 {
				d.health = jsonArray(rest[i+4:])
			}
		}
	}
	if stage != 2 || d.buildCmd == "" || d.user == "" || d.workdir == "" || len(d.entrypoint) == 0 {
		t.Fatalf("Dockerfile: want a build stage with go build -o ... ./cmd/netsentinel and a final stage with USER, WORKDIR, ENTRYPOINT: %+v", d)
	}
	return d
}

// flagValue is the value after flag in fields ("-m 0770").
func flagValue(fields []string, flag string) string {
	for i, f := range fields {
		if f == flag && i+1 < len(fields) {
			return fields[i+1]
		}
	}
	return ""
}

// TestContainerImageContract reproduces the image without a Docker engine:
// the binary built with the Dockerfile's own build command, run as the
// image's user with its ENTRYPOINT, CMD and ENV, in a working directory set
// up the way the Dockerfile creates it, once with the capabilities of each
// documented mode. Both write their report and spool there; mode (b)
// attributes another user's socket to its process, mode (a) cannot.
func TestContainerImageContract(t *testing.T) {
	requireRoot(t, "setpriv", "/usr/bin/python3")
	d := parseDockerfile(t, filepath.Join(repo, "Dockerfile"))

	// The state directory is the WORKDIR, made explicitly with the image
	// user's ownership (never left to WORKDIR, which makes it root-owned on
	// some builders), writable by uid 0's group for mode (b).
	uidStr, gidStr, _ := strings.Cut(d.user, ":")
	uid, err := strconv.Atoi(uidStr)
	if err != nil || uid == 0 {
		t.Fatalf("USER %q: want a numeric non-root uid", d.user)
	}
	if len(d.stateCopy) < 3 || d.stateCopy[len(d.stateCopy)-1] != d.workdir || !strings.HasPrefix(d.stateCopy[len(d.stateCopy)-2], "/") {
		t.Fatalf("no COPY --chown creates WORKDIR %s: %v", d.workdir, d.stateCopy)
	}
	chown := strings.TrimPrefix(d.stateCopy[1], "--chown=")
	if !strings.HasPrefix(d.stateCopy[1], "--chown=") || !strings.HasPrefix(chown, uidStr+":") {
		t.Fatalf("state COPY %v: want --chown=%s:...", d.stateCopy, uidStr)
	}
	mode, err := strconv.ParseUint(flagValue(d.stateRun, "-m"), 8, 32)
	if err != nil || d.stateRun[len(d.stateRun)-1] != d.stateCopy[len(d.stateCopy)-2] {
		t.Fatalf("state directory RUN %v does not make the COPY source %v with a mode", d.stateRun, d.stateCopy)
	}
	stateGID, _ := strconv.Atoi(strings.TrimPrefix(chown, uidStr+":"))
	if mode&0o020 == 0 || stateGID != 0 {
		t.Errorf("state dir %s:%d mode %o: mode (b) runs as uid 0 without CAP_DAC_OVERRIDE and needs group 0 write", uidStr, stateGID, mode)
	}
	if len(d.health) < 2 || d.health[0] != d.entrypoint[0] || d.health[1] != "health" {
		t.Errorf("HEALTHCHECK %v: want the binary itself (%s health)", d.health, d.entrypoint[0])
	}

	// The binary, built by the Dockerfile's command.
	top, err := os.MkdirTemp("", "netsentinel-image")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(top, "netsentinel")
	build := strings.Replace(d.buildCmd, d.buildOut, bin, 1)
	for k, v := range d.args {
		build = strings.ReplaceAll(build, "${"+k+"}", v)
	}
	cmd := exec.Command("sh", "-c", build)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("Dockerfile build command %q: %v\n%s", build, err, out)
	}

	pid, port := foreignListener(t)
	modes := []struct {
		name      string
		setpriv   []string
		attribute bool
	}{
		// docker run --security-opt no-new-privileges IMAGE (runAsNonRoot in Kubernetes).
		{"a-unprivileged", []string{"--reuid=" + uidStr, "--regid=" + gidStr, "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"}, false},
		// docker run --user 0:0 --cap-drop ALL --cap-add SYS_PTRACE --cap-add DAC_READ_SEARCH
		// --security-opt no-new-privileges (runAsUser: 0, capabilities drop ALL add the two).
		{"b-full-attribution", []string{"--reuid=0", "--regid=0", "--clear-groups",
			"--inh-caps=-all", "--bounding-set=-all,+sys_ptrace,+dac_read_search", "--no-new-privs"}, true},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			// The image's WORKDIR as the Dockerfile makes it.
			state := filepath.Join(top, m.name)
			if err := os.Mkdir(state, os.FileMode(mode)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(state, os.FileMode(mode)); err != nil { // umask
				t.Fatal(err)
			}
			if err := os.Chown(state, uid, stateGID); err != nil {
				t.Fatal(err)
			}
			args := append(append(append([]string{}, m.setpriv...), bin), d.entrypoint[1:]...)
			args = append(args, d.cmd...)
			sensor := exec.Command("setpriv", args...)
			sensor.Dir = state
			sensor.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/home/nonroot"}, d.env...)
			stderr := startSensor(t, sensor)

			alerts := filepath.Join(state, "alerts.ndjson")
			e := listenerAlert(t, alerts, port, 60*time.Second, stderr)
			got := sensortest.Field(e, "process.pid")
			if m.attribute && got != float64(pid) {
				t.Errorf("mode (b): nobody's listener attributed to pid %v, want %d", got, pid)
			}
			// Without capabilities the fds are unreadable: no PID, unless
			// the sensor infers the owner from what /proc shows everyone
			// (nobody's only process, detect.InferOwner), which depends on
			// what else runs as nobody on the machine (other tests' sensors)
			// and must then be the listener's process, marked inferred.
			if !m.attribute && got != nil {
				owner := fmt.Sprint(sensortest.Field(e, "netsentinel.evidence.owner"))
				if got != float64(pid) || !strings.HasPrefix(owner, "inferred") {
					t.Errorf("mode (a): nobody's listener attributed to pid %v (evidence owner %q) without capabilities; want none, or pid %d inferred", got, owner, pid)
				}
			}
			// The HEALTHCHECK, run the way Docker runs it: the same user,
			// inside the container.
			health := append(append(append([]string{}, m.setpriv...), bin), d.health[1:]...)
			deadline := time.Now().Add(30 * time.Second)
			for {
				out, err := exec.Command("setpriv", health...).CombinedOutput()
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("HEALTHCHECK %v still failing after 30 s: %v: %s; sensor stderr:\n%s", d.health, err, out, stderr)
				}
				time.Sleep(500 * time.Millisecond)
			}
			stopSensor(t, sensor, stderr)
			if r := reports(t, filepath.Join(state, "netsentinel_report.json")); len(r) == 0 {
				t.Errorf("no report in the working directory; stderr:\n%s", stderr)
			}
			if l, _ := filepath.Glob(filepath.Join(state, "netsentinel-spool", "*", "lock")); len(l) == 0 {
				t.Errorf("no spool in the working directory; stderr:\n%s", stderr)
			}
		})
	}
}
