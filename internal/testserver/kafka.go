package testserver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvKafkaBrokerBin overrides the kafkabroker (kfake) binary path.
const EnvKafkaBrokerBin = "NETSENTINEL_KAFKABROKER_BIN"

// KafkaBroker is one kafkabroker process (kfake, the Kafka wire protocol) on
// loopback. Restart brings it back on the same port.
type KafkaBroker struct {
	Addr string // 127.0.0.1:PORT

	tb   testing.TB
	bin  string
	args []string
	port int
	proc
	stderr *SyncBuffer
}

// StartKafkaBroker runs the broker on a free loopback port with extra args
// (see test/servers/kafkabroker: -topics, -partitions, -sasl, -data-dir ...);
// it is stopped at cleanup.
func StartKafkaBroker(tb testing.TB, args ...string) *KafkaBroker {
	tb.Helper()
	b := &KafkaBroker{tb: tb, bin: Binary(tb, "kafkabroker", EnvKafkaBrokerBin, "test/servers/build-kafkabroker.sh"),
		args: args, stderr: &SyncBuffer{}}
	b.start(0)
	tb.Cleanup(b.Stop)
	return b
}

func (b *KafkaBroker) start(port int) {
	b.tb.Helper()
	args := append([]string{"-addr", "127.0.0.1", "-port", strconv.Itoa(port)}, b.args...)
	var lastErr error
	// The port of a restarted broker may take a moment to be free again.
	for try := 0; try < 20; try++ {
		cmd := exec.Command(b.bin, args...)
		cmd.Stderr = b.stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.tb.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.tb.Fatalf("start %s: %v", b.bin, err)
		}
		ready := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if addr, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
					ready <- addr
				}
			}
		}()
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case addr := <-ready:
			b.cmd, b.exited, b.Addr = cmd, exited, addr
			_, p, _ := net.SplitHostPort(addr)
			b.port, _ = strconv.Atoi(p)
			return
		case <-exited:
			lastErr = fmt.Errorf("kafkabroker exited: %s", b.stderr.String())
			time.Sleep(100 * time.Millisecond)
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			b.tb.Fatalf("kafkabroker not ready after 20s: %s", b.stderr.String())
		}
	}
	b.tb.Fatalf("kafkabroker %v: %v", args, lastErr)
}

// Stop sends SIGTERM and waits (SIGKILL after 10 s).
func (b *KafkaBroker) Stop() { b.stop(10 * time.Second) }

// Kill ends the broker with SIGKILL, as a crash would.
func (b *KafkaBroker) Kill() { b.kill() }

// Restart starts the broker again on the same port.
func (b *KafkaBroker) Restart() { b.start(b.port) }

// Stderr is what the broker printed so far.
func (b *KafkaBroker) Stderr() string { return b.stderr.String() }

// RequireKcat returns kcat's path, or fails/skips as for a missing server.
func RequireKcat(tb testing.TB) string {
	tb.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		msg := "kcat not on PATH (apt-get install -y kcat; scripts/test.sh does it)"
		if os.Getenv("CI") != "" || os.Getenv("NETSENTINEL_REQUIRE_SERVERS") == "1" {
			tb.Fatal(msg)
		}
		tb.Skip("SKIPPING: " + msg)
	}
	return kcat
}

// KcatRecord is one line of `kcat -J`.
type KcatRecord struct {
	Topic     string   `json:"topic"`
	Partition int      `json:"partition"`
	Offset    int64    `json:"offset"`
	Headers   []string `json:"headers"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
}

// Header returns the value of the named message header.
func (r KcatRecord) Header(name string) (string, bool) {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == name {
			return r.Headers[i+1], true
		}
	}
	return "", false
}

// KcatConsume reads the whole topic with kcat (librdkafka), an independent
// client. A missing kcat fails or skips as for a missing server.
func KcatConsume(tb testing.TB, addr, topic string) []KcatRecord {
	tb.Helper()
	kcat := RequireKcat(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, kcat, "-b", addr, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("kcat: %v: %s", err, stderr.String())
	}
	var recs []KcatRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var r KcatRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatalf("kcat line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	return recs
}

// Signal sends sig to the broker (SIGSTOP/SIGCONT freeze and thaw it).
func (b *KafkaBroker) Signal(sig syscall.Signal) error {
	if b.cmd == nil {
		return fmt.Errorf("kafkabroker is not running")
	}
	return b.cmd.Process.Signal(sig)
}
