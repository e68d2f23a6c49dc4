package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvRsyslogdBin overrides the rsyslogd path (default: rsyslogd on PATH,
// then /usr/sbin/rsyslogd; Debian packages rsyslog and rsyslog-gnutls).
const EnvRsyslogdBin = "NETSENTINEL_RSYSLOGD_BIN"

// RsyslogOptions choose the listener of a test rsyslogd.
type RsyslogOptions struct {
	Proto string // tcp (imtcp, octet counting), udp (imudp) or tls (imtcp with gtls)
	// For tls: the server certificate, its key and the CA file, PEM.
	CertFile, KeyFile, CAFile string
}

// Rsyslog is one rsyslogd process on loopback, started with its own config
// (-f), pid file (-i) and work directory, all in a temporary directory: no
// imuxsock (so /dev/log is never touched), internal messages processed by
// this instance into its own log file rather than sent to the system
// logger. Every message received goes to messages.ndjson, one JSON object a
// line (RsyslogMessage). Kill and Restart keep the port and the output.
type Rsyslog struct {
	Addr string // 127.0.0.1:PORT
	Dir  string

	tb   testing.TB
	bin  string
	opts RsyslogOptions
	port int
	proc
	stderr *SyncBuffer
}

// RsyslogMessage is one received message as rsyslog parsed it.
type RsyslogMessage struct {
	PRI       string `json:"pri"`
	Timestamp string `json:"timestamp"`
	Hostname  string `json:"hostname"`
	AppName   string `json:"app"`
	ProcID    string `json:"procid"`
	MsgID     string `json:"msgid"`
	Msg       string `json:"msg"` // the MSG part (the payload)
	Raw       string `json:"raw"` // the whole message as received (without framing)
}

// RequireRsyslogd returns rsyslogd's path, or fails/skips as for a missing
// server.
func RequireRsyslogd(tb testing.TB) string {
	tb.Helper()
	if bin := os.Getenv(EnvRsyslogdBin); bin != "" {
		return bin
	}
	bin, err := exec.LookPath("rsyslogd")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/rsyslogd"); serr == nil {
			return "/usr/sbin/rsyslogd"
		}
		msg := "rsyslogd not found (apt-get install -y rsyslog rsyslog-gnutls; scripts/test.sh does it)"
		if os.Getenv("CI") != "" || os.Getenv("NETSENTINEL_REQUIRE_SERVERS") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip("SKIPPING REAL-SERVER TEST: " + msg)
	}
	return bin
}

// StartRsyslog starts rsyslogd on a free loopback port; it is stopped at
// cleanup.
func StartRsyslog(tb testing.TB, opts RsyslogOptions) *Rsyslog {
	tb.Helper()
	if opts.Proto == "tls" && (opts.CertFile == "" || opts.KeyFile == "" || opts.CAFile == "") {
		tb.Fatal("rsyslog tls: CertFile, KeyFile and CAFile are required")
	}
	r := &Rsyslog{tb: tb, bin: RequireRsyslogd(tb), opts: opts, Dir: tb.TempDir(), stderr: &SyncBuffer{}}
	if err := os.MkdirAll(filepath.Join(r.Dir, "work"), 0o700); err != nil {
		tb.Fatal(err)
	}
	var lastErr error
	for try := 0; try < 5; try++ { // a probed UDP port can be taken before rsyslogd binds it
		port := 0
		if opts.Proto == "udp" {
			port = freeUDPPort(tb)
		}
		if lastErr = r.start(port); lastErr == nil {
			tb.Cleanup(r.Stop)
			return r
		}
	}
	tb.Fatalf("rsyslogd did not start: %v", lastErr)
	return nil
}

func freeUDPPort(tb testing.TB) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// MessagesPath is the file every received message is written to.
func (r *Rsyslog) MessagesPath() string { return filepath.Join(r.Dir, "messages.ndjson") }

func (r *Rsyslog) config(port int) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "global(workDirectory=%s processInternalMessages=\"on\" maxMessageSize=\"256k\" net.enableDNS=\"off\"",
		q(filepath.Join(r.Dir, "work")))
	if r.opts.Proto == "tls" {
		fmt.Fprintf(&b, " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=%s defaultNetstreamDriverCertFile=%s defaultNetstreamDriverKeyFile=%s",
			q(r.opts.CAFile), q(r.opts.CertFile), q(r.opts.KeyFile))
	}
	b.WriteString(")\n")
	b.WriteString("module(load=\"builtin:omfile\" fileCreateMode=\"0600\" dirCreateMode=\"0700\")\n")
	b.WriteString(`template(name="fields" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="raw" name="rawmsg" format="jsonf")
}
`)
	fmt.Fprintf(&b, "ruleset(name=\"received\") { action(type=\"omfile\" file=%s template=\"fields\") }\n",
		q(r.MessagesPath()))
	switch r.opts.Proto {
	case "udp":
		b.WriteString("module(load=\"imudp\")\n")
		fmt.Fprintf(&b, "input(type=\"imudp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"received\")\n", port)
	default:
		if r.opts.Proto == "tls" {
			b.WriteString("module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n")
		} else {
			b.WriteString("module(load=\"imtcp\")\n")
		}
		fmt.Fprintf(&b, "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"received\" listenPortFileName=%s)\n",
			port, q(filepath.Join(r.Dir, "port")))
	}
	// rsyslogd's own messages (default ruleset) stay in the temp dir.
	fmt.Fprintf(&b, "*.* action(type=\"omfile\" file=%s)\n", q(filepath.Join(r.Dir, "rsyslogd.log")))
	return b.String()
}

// start runs rsyslogd listening on port (0: any free TCP port, reported by
// listenPortFileName) and waits until the port accepts.
func (r *Rsyslog) start(port int) error {
	r.tb.Helper()
	conf := filepath.Join(r.Dir, "rsyslog.conf")
	if err := os.WriteFile(conf, []byte(r.config(port)), 0o600); err != nil {
		r.tb.Fatal(err)
	}
	portFile := filepath.Join(r.Dir, "port")
	_ = os.Remove(portFile)
	logPath := filepath.Join(r.Dir, "rsyslogd.log")
	before, _ := os.ReadFile(logPath)
	starts := bytes.Count(before, []byte("] start"))
	cmd := exec.Command(r.bin, "-n", "-f", conf, "-i", filepath.Join(r.Dir, "rsyslogd.pid"))
	cmd.Stdout, cmd.Stderr = r.stderr, r.stderr
	if err := cmd.Start(); err != nil {
		r.tb.Fatalf("start %s: %v", r.bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	fail := func(err error) error {
		_ = cmd.Process.Kill()
		<-exited
		log, _ := os.ReadFile(filepath.Join(r.Dir, "rsyslogd.log"))
		return fmt.Errorf("%w; stderr: %s; log: %s", err, r.stderr.String(), tail(log, 800))
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-exited:
			return fail(fmt.Errorf("rsyslogd exited"))
		default:
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("rsyslogd not listening after 20s"))
		}
		if r.opts.Proto == "udp" {
			// imudp has bound its socket once rsyslogd logged its start.
			log, _ := os.ReadFile(logPath)
			if bytes.Count(log, []byte("] start")) > starts {
				r.port = port
				break
			}
		} else if port != 0 {
			// listenPortFileName is written for port 0 only.
			if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second); err == nil {
				c.Close()
				r.port = port
				break
			}
		} else if b, err := os.ReadFile(portFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			p, err := strconv.Atoi(string(bytes.TrimSpace(b)))
			if err != nil {
				return fail(fmt.Errorf("port file %q", b))
			}
			r.port = p
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.cmd, r.exited = cmd, exited
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
	return nil
}

// Stop sends SIGTERM (rsyslogd writes what it received, then exits) and
// waits; SIGKILL after 10 s.
func (r *Rsyslog) Stop() { r.stop(10 * time.Second) }

// Kill ends rsyslogd with SIGKILL, as a crash would: what it held in memory
// and in its socket buffers is lost.
func (r *Rsyslog) Kill() { r.kill() }

// Restart starts rsyslogd again on the same port, appending to the same
// output. A port still held by the old sockets is retried for 10 s.
func (r *Rsyslog) Restart() {
	r.tb.Helper()
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if err = r.start(r.port); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.tb.Fatalf("rsyslogd restart on port %d: %v", r.port, err)
}

// Messages reads every message received so far.
func (r *Rsyslog) Messages() []RsyslogMessage {
	r.tb.Helper()
	b, err := os.ReadFile(r.MessagesPath())
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.tb.Fatal(err)
	}
	var out []RsyslogMessage
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m RsyslogMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue // a line being written; read again later
		}
		out = append(out, m)
	}
	return out
}

// WaitMessages waits until done(messages) holds, polling the output file,
// and fails the test after limit.
func (r *Rsyslog) WaitMessages(limit time.Duration, done func([]RsyslogMessage) bool) []RsyslogMessage {
	r.tb.Helper()
	deadline := time.Now().Add(limit)
	for {
		msgs := r.Messages()
		if done(msgs) {
			return msgs
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(r.Dir, "rsyslogd.log"))
			r.tb.Fatalf("rsyslog: condition not met after %s with %d messages; rsyslogd log: %s", limit, len(msgs), tail(log, 1500))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Signal sends sig to rsyslogd (SIGSTOP/SIGCONT freeze and thaw it).
func (r *Rsyslog) Signal(sig syscall.Signal) error {
	if r.cmd == nil {
		return fmt.Errorf("rsyslogd is not running")
	}
	return r.cmd.Process.Signal(sig)
}
