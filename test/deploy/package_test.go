package deploy

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/internal/config"
	"github.com/netsentinel/netsentinel/test/sensortest"
)

const (
	unitPath   = "/usr/lib/systemd/system/netsentinel.service"
	configPath = "/etc/netsentinel/netsentinel.yaml"
)

// created is everything the package's install creates; purge removes it all.
var created = []string{"/usr/bin/netsentinel", configPath, "/etc/netsentinel", unitPath,
	"/var/lib/netsentinel", "/var/log/netsentinel",
	"/usr/share/bash-completion/completions/netsentinel", "/usr/share/zsh/vendor-completions/_netsentinel",
	"/usr/share/fish/vendor_completions.d/netsentinel.fish", "/usr/share/man/man1/netsentinel.1.gz"}

// buildPackages runs scripts/package.sh for version into dir.
func buildPackages(t *testing.T, ctx context.Context, dir, version string) (deb string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(repo, "scripts", "package.sh"))
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/package.sh: %v\n%s", err, out)
	}
	base := filepath.Join(dir, "netsentinel_"+version+"_"+goarch(t))
	for _, ext := range []string{".deb", ".rpm", ".tar.gz"} {
		if fi, err := os.Stat(base + ext); err != nil || fi.Size() == 0 {
			t.Fatalf("package.sh did not build %s%s: %v\n%s", base, ext, err, out)
		}
	}
	return base + ".deb"
}

func goarch(t *testing.T) string {
	out, err := exec.Command("go", "env", "GOARCH").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// unitService parses the [Service] section of a unit file.
func unitService(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Service]" {
			out[k] = v
		}
	}
	return out
}

// setprivCaps turns "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH" into setpriv's
// "+sys_ptrace,+dac_read_search".
func setprivCaps(caps string) string {
	var out []string
	for _, c := range strings.Fields(caps) {
		out = append(out, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(out, ",")
}

// asUnit is the command that starts the installed binary the way the unit
// does, without systemd: the unit's User/Group, its ambient capabilities and
// bounding set, no_new_privs, UMask, WorkingDirectory and ExecStart.
func asUnit(svc map[string]string, ambient bool, extra ...string) *exec.Cmd {
	args := []string{"--reuid=" + svc["User"], "--regid=" + svc["Group"], "--clear-groups",
		"--bounding-set=-all," + setprivCaps(svc["CapabilityBoundingSet"])}
	if ambient {
		caps := setprivCaps(svc["AmbientCapabilities"])
		args = append(args, "--inh-caps="+caps, "--ambient-caps="+caps)
	}
	if svc["NoNewPrivileges"] == "yes" {
		args = append(args, "--no-new-privs")
	}
	args = append(args, strings.Fields(svc["ExecStart"])...)
	args = append(args, extra...)
	cmd := exec.Command("sh", append([]string{"-c", `umask "$0"; exec setpriv "$@"`, svc["UMask"]}, args...)...)
	cmd.Dir = svc["WorkingDirectory"]
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	return cmd
}

// TestDebPackage installs the .deb built by scripts/package.sh, checks the
// unit with systemd-analyze and the packaged config, runs the installed
// binary as the unit would and sees it attribute another user's socket,
// upgrades over an edited config, and purges. It leaves the machine as it
// found it (the purge also runs on failure) and starts no systemd service.
func TestDebPackage(t *testing.T) {
	requireRoot(t, "dpkg", "dpkg-query", "setpriv", "systemd-analyze", "/usr/bin/python3", "useradd")
	if out, err := exec.Command("dpkg-query", "-W", "-f=${Status}", "netsentinel").Output(); err == nil && strings.Contains(string(out), "installed") {
		t.Fatalf("netsentinel is already installed here (%s): refusing to touch it", out)
	}
	if err := exec.Command("getent", "passwd", "netsentinel").Run(); err == nil {
		t.Fatal("a netsentinel user already exists here: refusing to touch it")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dist := t.TempDir()
	deb1 := buildPackages(t, ctx, dist, "0.0.1")
	deb2 := buildPackages(t, ctx, dist, "0.0.2")
	tarList := run(t, ctx, "tar", "-tzf", strings.TrimSuffix(deb1, ".deb")+".tar.gz")
	for _, f := range []string{"/netsentinel", "/netsentinel.yaml", "/netsentinel.service"} {
		if !strings.Contains(tarList, "netsentinel_0.0.1_"+goarch(t)+f+"\n") {
			t.Errorf("tar.gz lacks %s:\n%s", f, tarList)
		}
	}

	t.Cleanup(func() {
		out, err := exec.Command("dpkg", "--purge", "netsentinel").CombinedOutput()
		if err != nil {
			t.Errorf("cleanup: dpkg --purge: %v\n%s", err, out)
		}
	})
	run(t, ctx, "dpkg", "-i", deb1)

	// What install created.
	conffiles := run(t, ctx, "dpkg-query", "-W", "-f=${Conffiles}", "netsentinel")
	if !strings.Contains(conffiles, configPath) {
		t.Errorf("%s is not a conffile: %q", configPath, conffiles)
	}
	for _, p := range created {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after install: %v", err)
		}
	}
	uid, err := strconv.Atoi(strings.Split(run(t, ctx, "getent", "passwd", "netsentinel"), ":")[2])
	if err != nil || uid == 0 || uid >= 1000 {
		t.Errorf("netsentinel user uid %d (%v): want a system user", uid, err)
	}
	ownedBy(t, "/var/lib/netsentinel", uid, 0o750)
	ownedBy(t, "/var/log/netsentinel", uid, 0o750)
	ownedBy(t, configPath, 0, 0o640)

	// The unit: systemd accepts it, and it says what the issue asks.
	out, err := exec.CommandContext(ctx, "systemd-analyze", "verify", unitPath).CombinedOutput()
	if err != nil || strings.Contains(string(out), "netsentinel") {
		t.Errorf("systemd-analyze verify %s: %v\n%s", unitPath, err, out)
	}
	svc := unitService(t, unitPath)
	want := map[string]string{
		"User": "netsentinel", "Group": "netsentinel", "StateDirectory": "netsentinel", "LogsDirectory": "netsentinel",
		"AmbientCapabilities": "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH", "CapabilityBoundingSet": "CAP_SYS_PTRACE CAP_DAC_READ_SEARCH",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK", "SystemCallFilter": "@system-service",
		"Restart": "on-failure", "ExecReload": "/bin/kill -HUP $MAINPID", "WorkingDirectory": "/var/lib/netsentinel",
		"ExecStart": "/usr/bin/netsentinel -c " + configPath,
	}
	for k, v := range want {
		if svc[k] != v {
			t.Errorf("unit %s=%q, want %q", k, svc[k], v)
		}
	}

	// The packaged config passes the config check (and is read here for
	// the paths it names).
	if out := run(t, ctx, "/usr/bin/netsentinel", "config", "check", configPath); !strings.Contains(out, "OK") {
		t.Errorf("netsentinel config check %s: %s", configPath, out)
	}
	cfg, err := config.Load(configPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration.D() != 0 || !strings.HasPrefix(cfg.Output, "/var/lib/netsentinel/") {
		t.Errorf("packaged config: duration %v output %q, want continuous mode under /var/lib/netsentinel", cfg.Duration.D(), cfg.Output)
	}
	alerts := ""
	for _, s := range cfg.Sinks {
		if p, ok := strings.CutPrefix(s, "file:"); ok {
			alerts = p
		}
	}
	if !strings.HasPrefix(alerts, "/var/log/netsentinel/") {
		t.Fatalf("packaged config sinks %v: want a file sink under /var/log/netsentinel", cfg.Sinks)
	}

	// Started as the unit starts it, the installed binary attributes another
	// user's socket to its process; without the ambient capabilities it
	// cannot (the control run).
	pid, port := foreignListener(t)
	sensor := asUnit(svc, true)
	stderr := startSensor(t, sensor)
	e := listenerAlert(t, alerts, port, 60*time.Second, stderr)
	if got := sensortest.Field(e, "process.pid"); got != float64(pid) || sensortest.Str(e, "process.user.id") != "65534" {
		t.Errorf("alert for nobody's listener: process.pid %v user %v, want pid %d uid 65534", got, sensortest.Field(e, "process.user"), pid)
	}
	stopSensor(t, sensor, stderr)
	if len(reports(t, cfg.Output)) == 0 {
		t.Errorf("no window report beside %s after SIGINT; stderr:\n%s", cfg.Output, stderr)
	}
	for _, r := range reports(t, cfg.Output) {
		ownedBy(t, r, uid, 0o600)
	}
	if !strings.HasPrefix(cfg.Spool.Dir, "/var/lib/netsentinel/") {
		t.Errorf("packaged config: spool.dir %q, want it under /var/lib/netsentinel", cfg.Spool.Dir)
	}

	// A second listener: the first one's alert is within its cooldown, which
	// the state directory carries across restarts.
	_, port2 := foreignListener(t)
	control := filepath.Join(filepath.Dir(alerts), "control.ndjson")
	sensor = asUnit(svc, false, "--sink", "file:"+control)
	stderr = startSensor(t, sensor)
	e = listenerAlert(t, control, port2, 60*time.Second, stderr)
	if got := sensortest.Field(e, "process.pid"); got != nil {
		t.Errorf("without ambient capabilities the socket was attributed to pid %v: the test cannot tell", got)
	}
	stopSensor(t, sensor, stderr)

	// An upgrade keeps the edited config.
	orig, err := os.ReadFile(configPath)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(orig), "window: 5m", "window: 10m", 1) + "# edited by TestDebPackage\n"
	if err := os.WriteFile(configPath, []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	run(t, ctx, "dpkg", "-i", deb2)
	if v := run(t, ctx, "dpkg-query", "-W", "-f=${Version}", "netsentinel"); !strings.HasPrefix(v, "0.0.2") {
		t.Errorf("after upgrade: version %q", v)
	}
	if v := run(t, ctx, "/usr/bin/netsentinel", "version"); !strings.Contains(v, "0.0.2") {
		t.Errorf("after upgrade: binary says %q", v)
	}
	if b, _ := os.ReadFile(configPath); string(b) != edited {
		t.Errorf("upgrade replaced the edited config:\n%s", b)
	}

	// Purge removes what install created.
	run(t, ctx, "dpkg", "--purge", "netsentinel")
	for _, p := range created {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("after purge %s still exists", p)
		}
	}
	for _, db := range []string{"passwd", "group"} {
		if err := exec.Command("getent", db, "netsentinel").Run(); err == nil {
			t.Errorf("after purge the netsentinel %s entry remains", db)
		}
	}
}
