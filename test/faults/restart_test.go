package faults

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/testserver"
	"github.com/netsentinel/netsentinel/sinks"
)

// spooledIDs copies a spool directory (so the original is untouched) and
// lists the event ids it would replay.
func spooledIDs(t *testing.T, dir string) []string {
	t.Helper()
	cp := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cp, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sp, err := sinks.OpenSpool(cp, sinks.SpoolConfig{}, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	var ids []string
	for i := 0; i < 100000 && sp.Pending() > 0; i++ {
		evs, err := sp.Peek(500)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		if err := sp.Ack(len(evs)); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

// emptyRun starts the sensor on a stream that ends at once: it only replays
// what its spools hold, drains and exits.
func emptyRun(t *testing.T, dir, config string) *sensor {
	t.Helper()
	st := newStream(t, t.TempDir())
	s := startSensor(t, dir, st.path, config)
	st.open(t)
	st.close()
	s.wait(t, 60*time.Second)
	return s
}

// TestSIGKILLThenRestartDeliversSpooledAlerts: the store goes away, alerts
// pile into the spool, and netsentinel is killed with SIGKILL mid-stream.
// Started again with the store back, it must deliver every alert that was in
// the spool at the kill.
func TestSIGKILLThenRestartDeliversSpooledAlerts(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	base := vl.Base
	dir := t.TempDir()
	config := outageConfig(dir, "elasticsearch:"+base+"/insert/elasticsearch", "")
	spoolDir := filepath.Join(dir, "netsentinel-spool", sinks.SpoolDirName("elasticsearch:"+base+"/insert/elasticsearch"))

	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, config)
	st.open(t)
	st.sendPaced(t, 40)
	vl.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st.sendPaced(t, 1)
		if ids := spooledIDs(t, spoolDir); len(ids) >= 150 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing reached the spool within 30 s of the store outage")
		}
	}
	st.sendPaced(t, 10) // mid-stream: alerts still arriving
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	s.exited <- nil
	st.close()
	spooled := spooledIDs(t, spoolDir)
	t.Logf("killed after %d alerts; %d in the spool", st.n, len(spooled))
	if len(spooled) == 0 {
		t.Fatal("spool empty at the kill")
	}

	restart(t, vl)
	r := emptyRun(t, dir, config)
	got := vlEventIDs(t, vl)
	var missing []string
	for _, id := range spooled {
		if got[id] == 0 {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d spooled alerts not delivered after the restart (first %s)", len(missing), len(spooled), missing[0])
	}
	if !strings.Contains(r.log(), "spool holds events from an earlier run") {
		t.Error("the restart did not log that it replays the spool")
	}
	if left := spooledIDs(t, spoolDir); len(left) != 0 {
		t.Errorf("%d events still in the spool after a successful replay", len(left))
	}
}

// TestFullDiskFileSinkAndSpool: a file sink and the spool live on a tiny
// tmpfs that is already full. The sensor must say clearly what is wrong,
// keep running, count the drops, and the other file sink must get every
// alert on time.
func TestFullDiskFileSinkAndSpool(t *testing.T) {
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny")
	if err := os.Mkdir(tiny, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", tiny, "tmpfs", 0, "size=64k,mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skipf("SKIPPING: mounting a tmpfs needs CAP_SYS_ADMIN: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(tiny, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", tiny, err)
		}
	})
	// Fill it.
	filler, err := os.Create(filepath.Join(tiny, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 4096)
	for i := 0; i < 1000; i++ {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()

	fullSink := "file:" + filepath.Join(tiny, "alerts.ndjson")
	okPath := filepath.Join(dir, "ok.ndjson")
	config := fmt.Sprintf(`output: %s
sinks: [%q, %q]
interval: 100ms
queue: {queue_size: 20, max_retries: 2, backoff_initial: 50ms, backoff_max: 200ms, drain_timeout: 5s}
spool: {dir: %s}
`, filepath.Join(dir, "report.json"), fullSink+"?buffer=disk", "file:"+okPath, filepath.Join(tiny, "spool"))
	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, config)
	st.open(t)
	for range 5 { // 100 alerts, checked every 20
		st.sendPaced(t, 20)
		if lag := st.n - len(fileIDs(t, okPath)); lag > 20 {
			t.Errorf("the healthy file sink is %d alerts behind", lag)
		}
		select {
		case err := <-s.exited:
			t.Fatalf("netsentinel exited while a sink's disk was full: %v", err)
		default:
		}
	}
	st.close()
	s.wait(t, 30*time.Second)

	if got := len(fileIDs(t, okPath)); got != st.n {
		t.Errorf("healthy sink got %d of %d alerts", got, st.n)
	}
	log := s.log()
	if !strings.Contains(log, "no space left on device") {
		t.Errorf("stderr never says the disk is full:\n%s", tail([]byte(log), 3000))
	}
	c := sinkCounters(t, filepath.Join(dir, "report.json"))
	full, ok := c[fullSink]
	if !ok {
		t.Fatalf("no counters for %s in %v", fullSink, c)
	}
	delivered := len(fileIDs(t, filepath.Join(tiny, "alerts.ndjson")))
	if int(num(full, "dropped"))+delivered+int(num(full, "spooled")) < st.n || dropped(full, sinks.DropSpoolFull) == 0 {
		t.Errorf("full-disk sink counters %v (delivered %d of %d): every alert must be delivered, spooled or counted dropped, with spool_full", full, delivered, st.n)
	}
	t.Logf("full-disk sink: %v; healthy sink: %v", full, c["file:"+okPath])
}

// TestCorruptSpoolSegmentSkippedRestDelivered: a spool left by an earlier
// run has one damaged segment. The sensor reports it, skips the rest of that
// segment, and delivers everything else.
func TestCorruptSpoolSegmentSkippedRestDelivered(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.ndjson")
	spec := "file:" + out
	spoolRoot := filepath.Join(dir, "spool")
	cfg := sinks.SpoolConfig{SegmentBytes: 4096}
	sp, err := sinks.OpenSpool(filepath.Join(spoolRoot, sinks.SpoolDirName(spec)), cfg, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("spooled-%03d", i)
		if err := sp.Put([]sinks.Event{{ID: id, Body: []byte(`{"event":{"id":"` + id + `"},"message":"from an earlier run"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sp.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(spoolRoot, sinks.SpoolDirName(spec), "*.seg"))
	if len(segs) < 3 {
		t.Fatalf("want >= 3 segments, have %d", len(segs))
	}
	data, err := os.ReadFile(segs[1])
	if err != nil {
		t.Fatal(err)
	}
	all, _ := sinks.ReadSpoolSegment(data)
	data[len(data)/3] ^= 0x5a
	if err := os.WriteFile(segs[1], data, 0o600); err != nil {
		t.Fatal(err)
	}
	kept, derr := sinks.ReadSpoolSegment(data)
	if derr == nil {
		t.Fatal("damage not detectable")
	}
	lost := map[string]bool{}
	for _, e := range all[len(kept):] {
		lost[e.ID] = true
	}

	config := fmt.Sprintf("output: %s\nsinks: [%q]\nspool: {dir: %s, segment_bytes: 4096}\n",
		filepath.Join(dir, "report.json"), spec+"?buffer=disk", spoolRoot)
	s := emptyRun(t, dir, config)
	got := map[string]bool{}
	for _, id := range fileIDs(t, out) {
		got[id] = true
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("spooled-%03d", i)
		if !lost[id] && !got[id] {
			t.Errorf("%s (outside the damaged segment) not delivered", id)
		}
	}
	if len(got) != n-len(lost) {
		t.Errorf("delivered %d, want %d", len(got), n-len(lost))
	}
	if !strings.Contains(s.log(), "spool segment damaged") {
		t.Errorf("damage not reported on stderr")
	}
	c := sinkCounters(t, filepath.Join(dir, "report.json"))
	if dropped(c[spec], sinks.DropSpoolCorrupt) < 1 {
		t.Errorf("report counters %v: want spool_corrupt counted", c[spec])
	}
}

// TestSIGTERMWithStoreDownSpoolsThenReports: SIGTERM while the store is
// down. netsentinel must not spend its drain deadline retrying: it spools
// what is left, writes the report with per-sink counts that add up, and
// exits promptly; the next start delivers the spool.
func TestSIGTERMWithStoreDownSpoolsThenReports(t *testing.T) {
	vl := testserver.StartVictoriaLogs(t)
	base := vl.Base
	dir := t.TempDir()
	spec := "elasticsearch:" + base + "/insert/elasticsearch"
	config := outageConfig(dir, spec, "")
	st := newStream(t, dir)
	s := startSensor(t, dir, st.path, config)
	st.open(t)
	st.sendPaced(t, 30)
	vl.Stop()
	st.sendPaced(t, 60)
	start := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st.close() // the FIFO read returns; the pipeline sees the signal
	s.wait(t, 40*time.Second)
	took := time.Since(start)
	t.Logf("exited %s after SIGTERM", took.Round(time.Millisecond))
	if took > 15*time.Second {
		t.Errorf("shutdown took %s with a spool to take the events; it should not wait out the 30 s drain", took)
	}
	c := sinkCounters(t, filepath.Join(dir, "report.json"))
	es := c[spec]
	if es == nil {
		t.Fatalf("no counters for %s: %v", spec, c)
	}
	pending := len(spooledIDs(t, filepath.Join(dir, "netsentinel-spool", sinks.SpoolDirName(spec))))
	if num(es, "dropped") != 0 || pending == 0 {
		t.Fatalf("counters %v, %d left in the spool: want the undelivered alerts spooled, none dropped", es, pending)
	}
	if int(num(es, "sent"))+pending < st.n {
		t.Fatalf("sent %v + spooled-pending %d < %d alerts", es["sent"], pending, st.n)
	}
	restart(t, vl)
	emptyRun(t, dir, config)
	got := vlEventIDs(t, vl)
	for _, id := range fileIDs(t, filepath.Join(dir, "alerts.ndjson")) {
		if got[id] == 0 {
			t.Fatalf("alert %s lost across the SIGTERM", id)
		}
	}
}
