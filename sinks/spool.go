package sinks

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// Spool defaults.
const (
	DefaultSpoolMaxBytes     = 256 << 20       // cap of one sink's spool on disk
	DefaultSpoolSegmentBytes = 16 << 20        // a segment file rolls over at this size
	DefaultSpoolSyncInterval = 1 * time.Second // fsync period of the active segment
	// MaxSpoolRecord bounds one framed event; a length above it is corruption.
	MaxSpoolRecord = 64 << 20
)

// Drop reasons counted by the spool and the runner.
const (
	DropSpoolFull    = "spool_full"    // the spool reached its size cap (or the disk is full): newest dropped
	DropSpoolError   = "spool_error"   // the spool could not write (I/O error other than a full disk)
	DropSpoolCorrupt = "spool_corrupt" // a damaged record found on replay was skipped
)

// ErrSpoolFull is returned by Put when the events do not fit under the cap
// or the filesystem is full; nothing of the batch was written.
var ErrSpoolFull = errors.New("spool full")

// ErrSpoolClosed is returned after Close.
var ErrSpoolClosed = errors.New("spool closed")

// ErrSpoolLocked means another process holds the spool directory.
var ErrSpoolLocked = errors.New("spool locked")

// SpoolConfig is the `spool` section of the config.
type SpoolConfig struct {
	// Disabled turns the spool off: undeliverable events are dropped (counted).
	Disabled bool `yaml:"disabled"`
	// Dir holds one subdirectory per sink (default: netsentinel-spool beside the report).
	Dir string `yaml:"dir"`
	// MaxBytes caps each sink's spool (default 256 MiB).
	MaxBytes int64 `yaml:"max_bytes"`
	// SegmentBytes is the size at which a segment file rolls over (default 16 MiB).
	SegmentBytes int64 `yaml:"segment_bytes"`
	// SyncInterval is how often appended data is fsynced (default 1s).
	// 0 in a YAML file means the default; a negative value fsyncs every append.
	SyncInterval time.Duration `yaml:"sync_interval"`
}

// WithDefaults fills zero values.
func (c SpoolConfig) WithDefaults() SpoolConfig {
	if c.MaxBytes <= 0 {
		c.MaxBytes = DefaultSpoolMaxBytes
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = DefaultSpoolSegmentBytes
	}
	if c.SegmentBytes > c.MaxBytes {
		c.SegmentBytes = c.MaxBytes
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSpoolSyncInterval
	}
	return c
}

// Validate rejects impossible values, naming the key.
func (c SpoolConfig) Validate() error {
	switch {
	case c.MaxBytes < 0:
		return fmt.Errorf("spool.max_bytes: negative (%d)", c.MaxBytes)
	case c.SegmentBytes < 0:
		return fmt.Errorf("spool.segment_bytes: negative (%d)", c.SegmentBytes)
	case c.MaxBytes != 0 && c.MaxBytes < 4096:
		return fmt.Errorf("spool.max_bytes: %d is below the 4096-byte floor", c.MaxBytes)
	}
	return nil
}

// SpoolDirName turns a sink spec into a safe directory name: URL
// credentials removed, letters, digits, '.', '-' and '_' kept, everything
// else '_', at most 100 bytes.
func SpoolDirName(spec string) string {
	spec = specWithoutUserinfo(spec)
	var b strings.Builder
	for _, r := range spec {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 100 {
			break
		}
	}
	s := b.String()
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

// specWithoutUserinfo drops "user:password@" from every URL in spec, so no
// credential ends up in a path or a log line.
func specWithoutUserinfo(spec string) string {
	var out strings.Builder
	for {
		i := strings.Index(spec, "://")
		if i < 0 {
			out.WriteString(spec)
			return out.String()
		}
		out.WriteString(spec[:i+3])
		rest := spec[i+3:]
		end := strings.IndexAny(rest, "/?#,")
		if end < 0 {
			end = len(rest)
		}
		if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
			rest = rest[at+1:]
		}
		spec = rest
	}
}

// On-disk format.
//
// A spool directory holds segment files NNNNNNNNNNNNNNNN.seg (16 hex digits,
// increasing) and a "cursor" file. A segment starts with the 8-byte magic
// "NSSPOOL1", then records: 4-byte little-endian payload length, 4-byte
// CRC-32C (Castagnoli) of the payload, payload. A payload is uvarint-prefixed
// ID, uvarint field count, uvarint-prefixed key/value pairs, then the body to
// the end. The cursor file holds the JSON {"segment":N,"offset":O} of the
// first record not yet delivered; segments before it are deleted.
const (
	spoolMagic     = "NSSPOOL1"
	spoolHeader    = 8
	spoolSegSuffix = ".seg"
	spoolCursor    = "cursor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type spoolSeg struct {
	seq   uint64
	size  int64
	count int // records readable (from the open scan or appends)
	// damaged: the open scan found damage and counted it already.
	damaged bool
}

type spoolPos struct {
	seg uint64
	off int64
	idx int // records before off within the segment
}

// Spool is one sink's on-disk overflow: an append-only log of events
// delivered in order and acknowledged by a persisted cursor, so events
// survive sink outages and restarts (at-least-once). It is the disk Buffer;
// safe for concurrent use.
type Spool struct {
	dir   string
	cfg   SpoolConfig
	stats *Stats
	log   *zap.Logger
	lock  *os.File // flock on dir/lock, held while open (nil where unsupported)

	mu      sync.Mutex
	closed  bool
	segs    []spoolSeg // oldest first; the last is the active one
	total   int64      // bytes of all segment files
	active  *os.File   // appended to; nil until the first Put
	dirty   bool       // appended since the last fsync
	cur     spoolPos   // next record to deliver
	nextSeq uint64     // sequence number of the next new segment
	pending int        // records after cur
	peeked  []spoolPos // position after each record of the last Peek
	rf      *os.File   // read handle of cur.seg
	rfSeq   uint64

	// Mirrors of pending and total, stored under mu, read without it: Len
	// and Bytes (metrics, the runner's Stats) never wait on a stalled disk.
	lenA, bytesA atomic.Int64

	stop chan struct{}
	done chan struct{}
}

// mirrorLocked publishes pending and total to Len and Bytes.
func (s *Spool) mirrorLocked() {
	s.lenA.Store(int64(s.pending))
	s.bytesA.Store(s.total)
}

// OpenSpool opens (creating, mode 0700) the spool in dir, deletes segments
// already delivered, scans the rest to count pending events (reporting
// damage), and starts the fsync timer. stats receives "spool_corrupt" drops.
func OpenSpool(dir string, cfg SpoolConfig, stats *Stats, log *zap.Logger) (*Spool, error) {
	cfg = cfg.WithDefaults()
	if stats == nil {
		stats = &Stats{}
	}
	if log == nil {
		log = zap.NewNop()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool directory %s: %w", dir, err)
	}
	lock, err := lockSpoolDir(dir)
	if err != nil {
		return nil, err
	}
	s := &Spool{dir: dir, cfg: cfg, stats: stats, log: log.With(zap.String("spool", dir)),
		stop: make(chan struct{}), done: make(chan struct{}), lock: lock}
	if err := s.load(); err != nil {
		s.unlock()
		return nil, err
	}
	s.mirrorLocked() // not shared yet
	if s.pending > 0 {
		s.log.Info("spool holds events from an earlier run; replaying", zap.Int("events", s.pending))
	}
	if cfg.SyncInterval > 0 {
		go s.syncLoop()
	} else {
		close(s.done)
	}
	return s, nil
}

// unlock releases the spool directory lock (closing the file drops flock).
func (s *Spool) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x%s", seq, spoolSegSuffix))
}

// load lists segments, reads the cursor and scans what is left.
func (s *Spool) load() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool directory %s: %w", s.dir, err)
	}
	var seqs []uint64
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, spoolSegSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, spoolSegSuffix), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })

	cur := spoolPos{off: spoolHeader}
	if b, err := os.ReadFile(filepath.Join(s.dir, spoolCursor)); err == nil {
		var c struct {
			Segment uint64 `json:"segment"`
			Offset  int64  `json:"offset"`
		}
		if err := json.Unmarshal(b, &c); err != nil || c.Offset < spoolHeader {
			s.log.Warn("spool cursor unreadable; replaying from the oldest segment (duplicates possible)", zap.Error(err))
		} else {
			cur.seg, cur.off = c.Segment, c.Offset
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spool cursor: %w", err)
	}

	for _, seq := range seqs {
		path := s.segPath(seq)
		if seq < cur.seg {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: removing delivered segment: %w", err)
			}
			continue
		}
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("spool segment: %w", err)
		}
		seg := spoolSeg{seq: seq, size: st.Size()}
		from := int64(spoolHeader)
		if seq == cur.seg {
			from = cur.off
		}
		n, err := scanSegment(path, from)
		if err != nil {
			// How many records the damage hides is unknown: count one.
			s.stats.Drop(DropSpoolCorrupt, 1)
			seg.damaged = true
			s.log.Error("spool segment damaged; the records before the damage will be delivered, the rest of the segment is skipped",
				zap.String("segment", path), zap.Int("records_before_damage", n), zap.Error(err))
		}
		seg.count = n // for the cursor's segment: records after the cursor (cur.idx is 0)
		s.segs = append(s.segs, seg)
		s.total += seg.size
		s.pending += n
	}
	s.nextSeq = cur.seg
	if len(s.segs) > 0 {
		s.nextSeq = max(s.nextSeq, s.segs[len(s.segs)-1].seq+1)
	}
	if len(s.segs) == 0 {
		// Everything delivered: the next segment continues the numbering so
		// the saved cursor never points past it.
		cur = spoolPos{seg: s.nextSeq, off: spoolHeader}
	} else if s.segs[0].seq != cur.seg {
		// The cursor's segment is gone: start at the oldest remaining one.
		cur = spoolPos{seg: s.segs[0].seq, off: spoolHeader}
	}
	s.cur = cur
	return nil
}

// scanSegment counts the valid records of a segment file from offset from.
func scanSegment(path string, from int64) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := checkMagic(f); err != nil {
		return 0, err
	}
	n := 0
	off := from
	var hdr [8]byte
	buf := make([]byte, 0, 4096)
	for {
		k, err := f.ReadAt(hdr[:], off)
		if k == 0 && err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("offset %d: truncated record header", off)
		}
		ln := binary.LittleEndian.Uint32(hdr[:4])
		if ln > MaxSpoolRecord {
			return n, fmt.Errorf("offset %d: record length %d exceeds %d", off, ln, MaxSpoolRecord)
		}
		if cap(buf) < int(ln) {
			buf = make([]byte, ln)
		}
		buf = buf[:ln]
		if _, err := f.ReadAt(buf, off+8); err != nil {
			return n, fmt.Errorf("offset %d: truncated record (%d bytes)", off, ln)
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:]) {
			return n, fmt.Errorf("offset %d: checksum mismatch", off)
		}
		n++
		off += 8 + int64(ln)
	}
}

func checkMagic(f *os.File) error {
	var m [spoolHeader]byte
	if _, err := f.ReadAt(m[:], 0); err != nil || string(m[:]) != spoolMagic {
		return errors.New("not a spool segment (bad magic)")
	}
	return nil
}

// encodeSpoolRecord appends one framed event to dst.
func encodeSpoolRecord(dst []byte, ev Event) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	dst = binary.AppendUvarint(dst, uint64(len(ev.ID)))
	dst = append(dst, ev.ID...)
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = binary.AppendUvarint(dst, uint64(len(keys)))
	for _, k := range keys {
		dst = binary.AppendUvarint(dst, uint64(len(k)))
		dst = append(dst, k...)
		v := ev.Fields[k]
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	dst = append(dst, ev.Body...)
	payload := dst[start+8:]
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(payload, castagnoli))
	return dst
}

// DecodeSpoolPayload decodes one record payload (after its length and
// checksum) into an Event. It never panics on damaged input.
func DecodeSpoolPayload(p []byte) (Event, error) {
	var ev Event
	str := func(what string) (string, error) {
		n, k := binary.Uvarint(p)
		if k <= 0 || n > uint64(len(p)-k) {
			return "", fmt.Errorf("spool record: bad %s length", what)
		}
		v := string(p[k : k+int(n)])
		p = p[k+int(n):]
		return v, nil
	}
	id, err := str("id")
	if err != nil {
		return ev, err
	}
	ev.ID = id
	nf, k := binary.Uvarint(p)
	if k <= 0 || nf > uint64(len(p)) {
		return ev, errors.New("spool record: bad field count")
	}
	p = p[k:]
	if nf > 0 {
		ev.Fields = make(map[string]string, nf)
	}
	for i := uint64(0); i < nf; i++ {
		key, err := str("field key")
		if err != nil {
			return ev, err
		}
		val, err := str("field value")
		if err != nil {
			return ev, err
		}
		ev.Fields[key] = val
	}
	ev.Body = append([]byte(nil), p...)
	return ev, nil
}

// ReadSpoolSegment decodes every record of a segment image in order,
// stopping at the first damaged one (returned as the error with the records
// before it). Used by the fuzz target and by tools inspecting a spool.
func ReadSpoolSegment(data []byte) ([]Event, error) {
	if len(data) < spoolHeader || string(data[:spoolHeader]) != spoolMagic {
		return nil, errors.New("not a spool segment (bad magic)")
	}
	var out []Event
	off := spoolHeader
	for off < len(data) {
		if len(data)-off < 8 {
			return out, fmt.Errorf("offset %d: truncated record header", off)
		}
		ln := binary.LittleEndian.Uint32(data[off:])
		if ln > MaxSpoolRecord || int64(ln) > int64(len(data)-off-8) {
			return out, fmt.Errorf("offset %d: bad record length %d", off, ln)
		}
		payload := data[off+8 : off+8+int(ln)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(data[off+4:]) {
			return out, fmt.Errorf("offset %d: checksum mismatch", off)
		}
		ev, err := DecodeSpoolPayload(payload)
		if err != nil {
			return out, fmt.Errorf("offset %d: %w", off, err)
		}
		out = append(out, ev)
		off += 8 + int(ln)
	}
	return out, nil
}

// Put appends events as one write. It returns ErrSpoolFull (wrapped) when
// they do not fit under MaxBytes or the disk is full; nothing is then
// written, so the caller drops exactly these events (newest dropped).
func (s *Spool) Put(events []Event) error {
	if len(events) == 0 {
		return nil
	}
	buf := make([]byte, 0, 256*len(events))
	for _, ev := range events {
		n := len(buf)
		buf = encodeSpoolRecord(buf, ev)
		if len(buf)-n-8 > MaxSpoolRecord {
			return fmt.Errorf("spool: event %s of %d bytes exceeds the %d-byte record limit", ev.ID, len(buf)-n, MaxSpoolRecord)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.mirrorLocked()
	if s.closed {
		return ErrSpoolClosed
	}
	if s.total+int64(len(buf)) > s.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes used of %d in %s", ErrSpoolFull, s.total, s.cfg.MaxBytes, s.dir)
	}
	if s.active == nil || s.segs[len(s.segs)-1].size+int64(len(buf)) > s.cfg.SegmentBytes && s.segs[len(s.segs)-1].size > spoolHeader {
		if err := s.rollLocked(); err != nil {
			return err
		}
	}
	seg := &s.segs[len(s.segs)-1]
	if _, err := s.active.Write(buf); err != nil {
		// Undo a partial append so the segment stays well-formed.
		_ = s.active.Truncate(seg.size)
		if isNoSpace(err) {
			return fmt.Errorf("%w: %s: %w", ErrSpoolFull, s.dir, err)
		}
		return fmt.Errorf("spool write %s: %w", s.active.Name(), err)
	}
	seg.size += int64(len(buf))
	seg.count += len(events)
	s.total += int64(len(buf))
	s.pending += len(events)
	if s.cfg.SyncInterval < 0 {
		if err := s.active.Sync(); err != nil {
			return fmt.Errorf("spool fsync %s: %w", s.active.Name(), err)
		}
	} else {
		s.dirty = true
	}
	return nil
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// rollLocked starts a new segment (appends never reopen old segments, so a
// torn tail left by a crash stays where it is and is skipped on replay).
func (s *Spool) rollLocked() error {
	seq := s.nextSeq
	if s.total+spoolHeader > s.cfg.MaxBytes {
		return fmt.Errorf("%w: %d bytes used of %d in %s", ErrSpoolFull, s.total, s.cfg.MaxBytes, s.dir)
	}
	path := s.segPath(seq)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		if isNoSpace(err) {
			return fmt.Errorf("%w: %s: %w", ErrSpoolFull, s.dir, err)
		}
		return fmt.Errorf("spool: new segment: %w", err)
	}
	if _, err := f.Write([]byte(spoolMagic)); err != nil {
		f.Close()
		os.Remove(path)
		if isNoSpace(err) {
			return fmt.Errorf("%w: %s: %w", ErrSpoolFull, s.dir, err)
		}
		return fmt.Errorf("spool: new segment: %w", err)
	}
	if s.active != nil {
		if err := s.active.Sync(); err != nil {
			s.log.Warn("spool fsync failed", zap.Error(err))
		}
		s.active.Close()
	}
	fsutil.SyncDir(s.dir) // the new file's directory entry survives a power loss
	s.active, s.dirty = f, true
	s.nextSeq = seq + 1
	s.segs = append(s.segs, spoolSeg{seq: seq, size: spoolHeader})
	s.total += spoolHeader
	if len(s.segs) == 1 {
		s.cur = spoolPos{seg: seq, off: spoolHeader}
	}
	return nil
}

// Pending is the number of events in the spool not yet acknowledged.
func (s *Spool) Pending() int { return int(s.lenA.Load()) }

// Len is Pending (the Buffer interface).
func (s *Spool) Len() int { return s.Pending() }

// Durable is true: spooled events survive a crash (see fsync in the README).
func (s *Spool) Durable() bool { return true }

// Bytes is the spool's size on disk.
func (s *Spool) Bytes() int64 { return s.bytesA.Load() }

// Peek returns up to max of the oldest undelivered events, in order, without
// removing them; Ack removes them once delivered. A damaged record is
// reported (log, counted as dropped "spool_corrupt") and the rest of its
// segment skipped; reading resumes at the next segment.
func (s *Spool) Peek(max int) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.mirrorLocked()
	if s.closed {
		return nil, ErrSpoolClosed
	}
	s.peeked = s.peeked[:0]
	var out []Event
	pos := s.cur
	var hdr [8]byte
	atEnd := false // ran out of segments before out was full
	for len(out) < max && s.pending > len(out) && len(s.segs) > 0 {
		si := s.segIndex(pos.seg)
		if si < 0 {
			atEnd = true
			break
		}
		seg := s.segs[si]
		if pos.off >= seg.size {
			if si == len(s.segs)-1 {
				atEnd = true // the active segment: nothing more yet
				break
			}
			pos = spoolPos{seg: s.segs[si+1].seq, off: spoolHeader}
			continue
		}
		f, err := s.reader(pos.seg)
		var ev Event
		var ln uint32
		if err == nil {
			ev, ln, err = readRecordAt(f, pos.off, hdr[:], seg.size)
		}
		if err != nil {
			if len(out) > 0 {
				break // deliver what precedes the damage first
			}
			s.skipDamagedLocked(si, pos, err)
			pos = s.cur
			continue
		}
		out = append(out, ev)
		pos.off += 8 + int64(ln)
		pos.idx++
		s.peeked = append(s.peeked, pos)
	}
	if len(out) == 0 && s.pending > 0 && atEnd {
		// The count says more but no segment holds it: trust the files.
		s.log.Error("spool count out of step with its segments; resetting", zap.Int("pending", s.pending))
		s.pending = 0
	}
	return out, nil
}

// readRecordAt reads and checks one record at off of a file of size limit.
func readRecordAt(f *os.File, off int64, hdr []byte, limit int64) (Event, uint32, error) {
	if off+8 > limit {
		return Event{}, 0, fmt.Errorf("offset %d: truncated record header", off)
	}
	if _, err := f.ReadAt(hdr[:8], off); err != nil {
		return Event{}, 0, fmt.Errorf("offset %d: %w", off, err)
	}
	ln := binary.LittleEndian.Uint32(hdr[:4])
	if ln > MaxSpoolRecord || off+8+int64(ln) > limit {
		return Event{}, 0, fmt.Errorf("offset %d: bad record length %d", off, ln)
	}
	p := make([]byte, ln)
	if _, err := f.ReadAt(p, off+8); err != nil {
		return Event{}, 0, fmt.Errorf("offset %d: %w", off, err)
	}
	if crc32.Checksum(p, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return Event{}, 0, fmt.Errorf("offset %d: checksum mismatch", off)
	}
	ev, err := DecodeSpoolPayload(p)
	if err != nil {
		return Event{}, 0, fmt.Errorf("offset %d: %w", off, err)
	}
	return ev, ln, nil
}

// skipDamagedLocked reports damage at pos and moves the cursor to the next
// segment, counting the records lost (at least one).
func (s *Spool) skipDamagedLocked(si int, pos spoolPos, cause error) {
	seg := s.segs[si]
	// Records known to follow (counted when the segment was scanned or
	// written); when the damage hides how many there were, count one.
	known := max(seg.count-pos.idx, 0)
	lost := known
	if !seg.damaged {
		lost = max(known, 1)
	}
	s.pending -= min(known, s.pending)
	if lost > 0 {
		s.stats.Drop(DropSpoolCorrupt, uint64(lost))
		s.log.Error("spool segment corrupted; skipping the rest of it",
			zap.String("segment", s.segPath(seg.seq)), zap.Int64("offset", pos.off),
			zap.Int("events_lost", lost), zap.Error(cause))
	}
	if si == len(s.segs)-1 {
		// Damage in the active segment: seal it so new appends start a
		// fresh, readable segment, and move past it.
		if s.active != nil {
			s.active.Close()
			s.active = nil
		}
		s.segs[si].count = pos.idx
		s.nextSeq = max(s.nextSeq, seg.seq+1)
		s.cur = spoolPos{seg: s.nextSeq, off: spoolHeader}
		s.dropSegmentsBeforeLocked(s.cur.seg)
	} else {
		s.segs[si].count = pos.idx
		s.cur = spoolPos{seg: s.segs[si+1].seq, off: spoolHeader}
		s.dropSegmentsBeforeLocked(s.cur.seg)
	}
	s.peeked = s.peeked[:0]
	if err := s.writeCursorLocked(); err != nil {
		s.log.Warn("spool cursor not saved", zap.Error(err))
	}
}

func (s *Spool) segIndex(seq uint64) int {
	for i := range s.segs {
		if s.segs[i].seq == seq {
			return i
		}
	}
	return -1
}

// reader returns a read handle for segment seq, reusing the last one.
func (s *Spool) reader(seq uint64) (*os.File, error) {
	if s.rf != nil && s.rfSeq == seq {
		return s.rf, nil
	}
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	f, err := os.Open(s.segPath(seq))
	if err != nil {
		return nil, err
	}
	if err := checkMagic(f); err != nil {
		f.Close()
		return nil, err
	}
	s.rf, s.rfSeq = f, seq
	return f, nil
}

// Ack removes the first n events returned by the last Peek, persisting the
// cursor and deleting segments fully delivered.
func (s *Spool) Ack(n int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.mirrorLocked()
	if s.closed {
		return ErrSpoolClosed
	}
	if n <= 0 {
		return nil
	}
	if n > len(s.peeked) {
		return fmt.Errorf("spool: ack of %d events but only %d were peeked", n, len(s.peeked))
	}
	s.cur = s.peeked[n-1]
	s.pending -= n
	s.peeked = s.peeked[:0]
	// Past the end of a sealed segment: move to the next one.
	if si := s.segIndex(s.cur.seg); si >= 0 && si < len(s.segs)-1 && s.cur.off >= s.segs[si].size {
		s.cur = spoolPos{seg: s.segs[si+1].seq, off: spoolHeader}
	}
	if err := s.writeCursorLocked(); err != nil {
		return err
	}
	s.dropSegmentsBeforeLocked(s.cur.seg)
	if s.pending == 0 && len(s.segs) == 1 && s.active != nil && s.segs[0].size > s.cfg.SegmentBytes/2 {
		// Empty and large: roll so the delivered bytes can be freed.
		if err := s.rollLocked(); err == nil {
			s.cur = spoolPos{seg: s.segs[len(s.segs)-1].seq, off: spoolHeader}
			_ = s.writeCursorLocked()
			s.dropSegmentsBeforeLocked(s.cur.seg)
		}
	}
	return nil
}

// dropSegmentsBeforeLocked deletes segments older than seq (after the
// cursor was saved past them).
func (s *Spool) dropSegmentsBeforeLocked(seq uint64) {
	i := 0
	for i < len(s.segs) && s.segs[i].seq < seq {
		if s.rf != nil && s.rfSeq == s.segs[i].seq {
			s.rf.Close()
			s.rf = nil
		}
		if err := os.Remove(s.segPath(s.segs[i].seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool: removing delivered segment", zap.Error(err))
		}
		s.total -= s.segs[i].size
		i++
	}
	s.segs = append(s.segs[:0], s.segs[i:]...)
}

// writeCursorLocked saves the cursor atomically (fsync'd temp file + rename).
func (s *Spool) writeCursorLocked() error {
	b, _ := json.Marshal(struct {
		Segment uint64 `json:"segment"`
		Offset  int64  `json:"offset"`
	}{s.cur.seg, s.cur.off})
	if err := fsutil.WriteFileAtomic(filepath.Join(s.dir, spoolCursor), b); err != nil {
		return fmt.Errorf("spool cursor: %w", err)
	}
	return nil
}

func (s *Spool) syncLoop() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			// fsync outside the lock: appends and reads go on meanwhile. A
			// roll-over may close f concurrently; it fsyncs f itself first.
			s.mu.Lock()
			f := s.active
			if !s.dirty {
				f = nil
			}
			s.dirty = false
			s.mu.Unlock()
			if f != nil {
				if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
					s.log.Warn("spool fsync failed", zap.Error(err))
				}
			}
		}
	}
}

// Close fsyncs and closes the spool; undelivered events stay on disk for
// the next run.
func (s *Spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var err error
	if s.active != nil {
		err = s.active.Sync()
		if cerr := s.active.Close(); err == nil {
			err = cerr
		}
		s.active = nil
	}
	if s.rf != nil {
		s.rf.Close()
		s.rf = nil
	}
	s.mu.Unlock()
	close(s.stop)
	<-s.done
	s.unlock()
	if err != nil {
		return fmt.Errorf("spool close %s: %w", s.dir, err)
	}
	return nil
}
