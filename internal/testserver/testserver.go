// Package testserver starts the real servers the tests ship to — VictoriaLogs
// (a log store that speaks the Elasticsearch bulk protocol) — on loopback,
// from the binaries test/servers/build*.sh builds from pinned modules. A
// missing binary fails the test when CI or NETSENTINEL_REQUIRE_SERVERS=1 is
// set, and skips it loudly otherwise.
package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EnvVictoriaLogsBin overrides the VictoriaLogs binary path.
const EnvVictoriaLogsBin = "NETSENTINEL_VICTORIALOGS_BIN"

// RepoRoot walks up from the working directory to this module's go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for range 20 {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/netsentinel/netsentinel\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	tb.Fatal("repository root (go.mod of github.com/netsentinel/netsentinel) not found above the working directory")
	return ""
}

// Binary finds a test server binary (env override, else
// test/servers/bin/NAME), or fails/skips as the package doc says.
func Binary(tb testing.TB, name, env, build string) string {
	tb.Helper()
	bin := os.Getenv(env)
	if bin == "" {
		bin = filepath.Join(RepoRoot(tb), "test", "servers", "bin", name)
	}
	if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return bin
	}
	msg := fmt.Sprintf("%s binary not found at %s: run %s (or set %s)", name, bin, build, env)
	if os.Getenv("CI") != "" || os.Getenv("NETSENTINEL_REQUIRE_SERVERS") == "1" {
		tb.Fatal(msg)
	}
	tb.Skip("SKIPPING REAL-SERVER TEST: " + msg)
	return ""
}

// VictoriaLogs is a VictoriaLogs process on a loopback port with its own
// storage directory. Stop and Start keep both, so a test can take the store
// down and bring it back where the sink expects it.
type VictoriaLogs struct {
	Base string // http://127.0.0.1:PORT

	bin, addr, dir string
	mu             sync.Mutex
	cmd            *exec.Cmd
	exited         chan error
	logf           *os.File
}

// StartVictoriaLogs starts VictoriaLogs and waits for /health; it is killed
// at cleanup.
func StartVictoriaLogs(tb testing.TB) *VictoriaLogs {
	tb.Helper()
	bin := Binary(tb, "victoria-logs", EnvVictoriaLogsBin, "test/servers/build.sh")
	var lastErr error
	for try := 0; try < 3; try++ { // a free port can be taken between probe and start
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		v := &VictoriaLogs{Base: "http://" + addr, bin: bin, addr: addr, dir: tb.TempDir()}
		if lastErr = v.Start(); lastErr == nil {
			tb.Cleanup(v.Stop)
			return v
		}
	}
	tb.Fatalf("VictoriaLogs did not start: %v", lastErr)
	return nil
}

// Start (re)starts the process on the same address and storage.
func (v *VictoriaLogs) Start() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	logf, err := os.OpenFile(filepath.Join(v.dir, "victoria-logs.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(v.bin, "-storageDataPath="+filepath.Join(v.dir, "data"), "-httpListenAddr="+v.addr,
		"-retentionPeriod=100y", "-loggerLevel=WARN")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", v.bin, err)
	}
	v.cmd, v.logf, v.exited = cmd, logf, make(chan error, 1)
	go func(c *exec.Cmd, ch chan error) { ch <- c.Wait() }(cmd, v.exited)
	if err := v.waitHealthy(15 * time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-v.exited
		logf.Close()
		v.cmd = nil
		out, _ := os.ReadFile(logf.Name())
		return fmt.Errorf("%w; log: %s", err, tail(out, 800))
	}
	return nil
}

// Stop shuts the process down cleanly (SIGTERM, SIGKILL after 15 s);
// storage is kept. VictoriaLogs acknowledges a bulk request before its data
// reaches disk, so a SIGKILL can lose what it acknowledged: outage tests stop
// it cleanly to test our delivery, not its durability.
func (v *VictoriaLogs) Stop() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.cmd == nil {
		return
	}
	_ = v.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-v.exited:
	case <-time.After(15 * time.Second):
		_ = v.cmd.Process.Kill()
		<-v.exited
	}
	v.logf.Close()
	v.cmd = nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (v *VictoriaLogs) waitHealthy(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-v.exited:
			v.exited <- err
			return fmt.Errorf("victoria-logs exited: %v", err)
		default:
		}
		res, err := client.Get(v.Base + "/health")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no healthy answer from %s/health within %s", v.Base, limit)
}

// InsertURL is the Elasticsearch-compatible endpoint for the sink.
func (v *VictoriaLogs) InsertURL() string { return v.Base + "/insert/elasticsearch" }

// Headers map ECS message and @timestamp to VictoriaLogs' _msg and _time.
func (v *VictoriaLogs) Headers() map[string]string {
	return map[string]string{"VL-Msg-Field": "message", "VL-Time-Field": "@timestamp", "VL-Stream-Fields": "host.name"}
}

// Query runs a LogsQL query after making everything ingested searchable.
func (v *VictoriaLogs) Query(tb testing.TB, q string) []map[string]string {
	tb.Helper()
	res, err := http.Get(v.Base + "/internal/force_flush")
	if err != nil {
		tb.Fatal(err)
	}
	res.Body.Close()
	res, err = http.PostForm(v.Base+"/select/logsql/query", url.Values{"query": {q}})
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if res.StatusCode != 200 {
		tb.Fatalf("query %q: HTTP %d: %s", q, res.StatusCode, tail(body, 500))
	}
	var rows []map[string]string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var row map[string]string
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			tb.Fatalf("query %q: row is not JSON: %v", q, err)
		}
		rows = append(rows, row)
	}
	return rows
}

// Count returns the number of documents matching a LogsQL filter.
func (v *VictoriaLogs) Count(tb testing.TB, filter string) int {
	tb.Helper()
	rows := v.Query(tb, filter+" | stats count() as n")
	if len(rows) != 1 {
		tb.Fatalf("count %q: %d rows", filter, len(rows))
	}
	n, err := strconv.Atoi(rows[0]["n"])
	if err != nil {
		tb.Fatalf("count %q: %v", filter, rows[0])
	}
	return n
}
