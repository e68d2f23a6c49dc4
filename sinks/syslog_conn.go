package sinks

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Syslog sends events as RFC 5424 messages to a syslog server (rsyslog,
// syslog-ng, a SIEM collector) over TCP or TLS with octet-counting framing
// (RFC 6587 / RFC 5425: "LEN SP MSG"), or over UDP, one message per datagram
// (RFC 5426).
//
// Delivery over TCP/TLS is at least once, within limits: syslog has no
// application acknowledgement, so a successful write only means the kernel
// took the bytes. A reader goroutine waits on every connection (a syslog
// server never sends anything, so a read returns only when the server closed
// or reset the connection) and records when it broke. Events written less
// than ResendWindow before that moment are sent again, first, on the next
// connection: events that sat in socket buffers or in the server's memory
// when it died arrive, some possibly twice (event.id identifies them). After
// a loss a background loop reconnects with jittered backoff and re-sends
// them even when no new event comes. Close half-closes the connection and
// waits for the server to close its side, which it does only after reading
// everything. What remains: an event the server read and then lost more
// than ResendWindow before it died (a server stalled that long), re-sends
// still pending when netsentinel itself stops or crashes (logged with their
// number), and anything over UDP, which is fire and forget.
type Syslog struct {
	cfg    SyslogConfig
	hdr    syslogHeader
	tlsCfg *tls.Config
	dl     *DeadLetter
	ownDL  bool
	log    *zap.Logger
	now    func() time.Time
	dialer net.Dialer

	mu      sync.Mutex
	conn    *syslogConn
	sent    []syslogRecord // written on the current connection, oldest first
	sentLen int            // bytes in sent
	resend  []syslogRecord // to write first on the next connection
	// resentUnreported counts frames re-sent since the last Write; the
	// next Write reports them (Outcome.Resent).
	resentUnreported int
	closed           bool
	down             bool // logged "connection lost" and not yet "connected"

	wake      chan struct{} // a connection broke
	stop      chan struct{} // closed by Close
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

// syslogRecord is one framed message written to a connection.
type syslogRecord struct {
	frame []byte
	at    time.Time
}

// syslogConn is one TCP/TLS connection and its reader.
type syslogConn struct {
	c       net.Conn
	dead    chan struct{} // closed when the reader saw the connection end
	brokeAt time.Time     // set before dead is closed
	err     error         // what the reader saw (io.EOF for an orderly close)
}

func (c *syslogConn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// NewSyslog builds the sink from cfg (validated here; zero values take the
// defaults). dl receives events that can never
// be sent (when nil, cfg.DeadLetter is opened if set, else they are counted
// as dropped). No network I/O happens here: the first Write connects.
func NewSyslog(cfg SyslogConfig, dl *DeadLetter, log *zap.Logger) (*Syslog, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("syslog sink config: %w: %w", ErrPermanent, err)
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	s := &Syslog{
		cfg: cfg, hdr: newSyslogHeader(cfg), dl: dl, now: time.Now,
		log:    log.With(zap.String("sink", KindSyslog), zap.String("transport", cfg.Network), zap.String("address", cfg.Address)),
		dialer: net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second},
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	if cfg.Network == SyslogTLS {
		host, _, _ := net.SplitHostPort(cfg.Address)
		tc, err := cfg.TLS.ForHost(host).Build(s.log)
		if err != nil {
			return nil, fmt.Errorf("syslog sink tls: %w: %w", ErrPermanent, err)
		}
		s.tlsCfg = tc
	}
	if dl == nil && cfg.DeadLetter != "" {
		d, err := OpenDeadLetter(cfg.DeadLetter)
		if err != nil {
			return nil, fmt.Errorf("syslog sink dead_letter: %w", err)
		}
		s.dl, s.ownDL = d, true
	}
	if cfg.Network != SyslogUDP {
		s.wg.Add(1)
		go s.reconnectLoop()
	}
	return s, nil
}

// Name is "syslog:" + transport + "://" + address, plus "?format=cef" for CEF.
func (s *Syslog) Name() string {
	n := KindSyslog + ":" + s.cfg.Network + "://" + s.cfg.Address
	if s.cfg.Format == SyslogFormatCEF {
		n += "?format=cef"
	}
	return n
}

// Config is the effective configuration.
func (s *Syslog) Config() SyslogConfig { return s.cfg }

// message renders ev as one RFC 5424 message (unframed).
func (s *Syslog) message(ev Event) ([]byte, error) {
	var meta syslogDocMeta
	if err := json.Unmarshal(ev.Body, &meta); err != nil {
		return nil, fmt.Errorf("event body is not JSON: %w", err)
	}
	ts := s.now()
	for _, v := range []string{meta.Timestamp, meta.Time} {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			ts = t
			break
		}
	}
	sevName := meta.NetSentinel.Severity
	if sevName == "" {
		sevName = meta.Severity
	}
	rule := ev.Fields["rule"]
	if rule == "" {
		rule = meta.Event.Action
	}
	payload := ev.Body
	if s.cfg.Format == SyslogFormatCEF {
		p, err := FormatCEF(ev.Body, "")
		if err != nil {
			return nil, err
		}
		payload = p
	}
	return s.hdr.appendSyslog(make([]byte, 0, 128+len(payload)), syslogSeverity(ev, sevName), ts, rule, payload), nil
}

// deadLetter records ev as never sendable and returns its outcome.
func (s *Syslog) deadLetter(ev Event, reason string) Outcome {
	if s.dl == nil {
		s.log.Error("event cannot be sent and no dead_letter file is configured: event dropped",
			zap.String("event_id", ev.ID), zap.String("reason", reason))
		return Outcome{Status: Dropped, Reason: "syslog_unsendable", Err: errors.New(reason)}
	}
	if err := s.dl.Write(s.Name(), ev, reason); err != nil {
		s.log.Error("event cannot be sent and the dead-letter write failed: event dropped",
			zap.String("event_id", ev.ID), zap.String("reason", reason), zap.Error(err))
		return Outcome{Status: Dropped, Reason: "dead_letter_write_failed", Err: err}
	}
	s.log.Warn("event cannot be sent; dead-lettered",
		zap.String("event_id", ev.ID), zap.String("reason", reason), zap.String("dead_letter", s.dl.Path()))
	return Outcome{Status: DeadLettered, Err: errors.New(reason)}
}

// Write sends batch. Events that can never be sent are dead-lettered; on a
// connection failure the events not written are Retry. Frames re-sent
// after a broken connection (here or by the reconnect loop) are reported
// in the first outcome's Resent.
func (s *Syslog) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("syslog sink %s: %w: closed", s.cfg.Address, ErrPermanent)
	}
	outs := make([]Outcome, len(batch))
	idx := make([]int, 0, len(batch)) // batch index of each message
	msgs := make([][]byte, 0, len(batch))
	for i, ev := range batch {
		m, err := s.message(ev)
		if err != nil {
			outs[i] = s.deadLetter(ev, err.Error())
			continue
		}
		if s.cfg.Network == SyslogUDP && len(m) > s.cfg.UDPMaxBytes {
			outs[i] = s.deadLetter(ev, fmt.Sprintf("message of %d bytes exceeds udp_max_bytes %d", len(m), s.cfg.UDPMaxBytes))
			continue
		}
		idx, msgs = append(idx, i), append(msgs, m)
	}
	var n int
	var err error
	if len(msgs) > 0 {
		if s.cfg.Network == SyslogUDP {
			n, err = s.writeUDP(ctx, msgs)
		} else {
			n, err = s.writeStream(ctx, msgs)
		}
	}
	if len(outs) > 0 {
		outs[0].Resent, s.resentUnreported = s.resentUnreported, 0
	}
	if err != nil {
		rem := make([]Event, 0, len(idx)-n)
		for _, i := range idx[n:] {
			outs[i] = Outcome{Status: Retry, Err: err, Resent: outs[i].Resent}
			rem = append(rem, batch[i])
		}
		return outs, &RetryableError{Remaining: rem, Err: err}
	}
	return outs, nil
}

// writeUDP sends one datagram per message; it returns how many were sent.
func (s *Syslog) writeUDP(ctx context.Context, msgs [][]byte) (int, error) {
	if s.conn == nil {
		c, err := s.dialer.DialContext(ctx, "udp", s.cfg.Address)
		if err != nil {
			return 0, fmt.Errorf("syslog %s: %w", s.cfg.Address, err)
		}
		s.conn = &syslogConn{c: c, dead: make(chan struct{})}
	}
	for i, m := range msgs {
		if err := ctx.Err(); err != nil {
			return i, err
		}
		_ = s.conn.c.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		if _, err := s.conn.c.Write(m); err != nil {
			// A connected UDP socket reports an earlier ICMP "port
			// unreachable" here (ECONNREFUSED): start afresh next time.
			s.conn.c.Close()
			s.conn = nil
			return i, fmt.Errorf("syslog %s: %w", s.cfg.Address, err)
		}
	}
	return len(msgs), nil
}

// appendFrame writes the RFC 6587 octet-counting frame "LEN SP MSG".
func appendFrame(b, msg []byte) []byte {
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, ' ')
	return append(b, msg...)
}

// writeStream sends msgs over the TCP/TLS connection, first re-sending
// what a broken connection may have lost. It returns how many of msgs were
// written whole.
func (s *Syslog) writeStream(ctx context.Context, msgs [][]byte) (int, error) {
	if err := s.ensureConnLocked(ctx); err != nil {
		return 0, err
	}
	now := s.now()
	recs := make([]syslogRecord, len(msgs))
	var buf []byte
	for i, m := range msgs {
		start := len(buf)
		buf = appendFrame(buf, m)
		recs[i] = syslogRecord{frame: buf[start:len(buf):len(buf)], at: now}
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(now.Add(s.cfg.WriteTimeout)) {
		_ = s.conn.c.SetWriteDeadline(dl)
	} else {
		_ = s.conn.c.SetWriteDeadline(now.Add(s.cfg.WriteTimeout))
	}
	n, err := s.conn.c.Write(buf)
	whole := 0
	for off := 0; whole < len(recs) && off+len(recs[whole].frame) <= n; whole++ {
		off += len(recs[whole].frame)
	}
	s.remember(recs[:whole])
	if err != nil {
		// Frames written whole may still be lost with the connection: they
		// are in the resend window. A partial frame is never counted.
		s.breakConnLocked(err)
		return whole, fmt.Errorf("syslog %s: write: %w", s.cfg.Address, err)
	}
	return whole, nil
}

// remember adds written records to the resend window and forgets those
// that can no longer qualify (older than the window) or exceed its size.
func (s *Syslog) remember(recs []syslogRecord) {
	s.sent = append(s.sent, recs...)
	for _, r := range recs {
		s.sentLen += len(r.frame)
	}
	cut := s.now().Add(-s.cfg.ResendWindow)
	i := 0
	for i < len(s.sent) && (s.sent[i].at.Before(cut) || s.sentLen > s.cfg.ResendBytes && i < len(s.sent)-1) {
		s.sentLen -= len(s.sent[i].frame)
		i++
	}
	if i > 0 {
		s.sent = append(s.sent[:0:0], s.sent[i:]...)
	}
}

// ensureConnLocked makes sure a live connection exists, re-sending what a
// broken one may have lost; it dials once (the caller's backoff, or the
// reconnect loop's, spaces attempts).
func (s *Syslog) ensureConnLocked(ctx context.Context) error {
	if s.conn != nil && s.conn.isDead() {
		s.breakConnLocked(nil)
	}
	if s.conn == nil {
		c, err := s.dial(ctx)
		if err != nil {
			if !s.down {
				s.down = true
				s.log.Warn("syslog server unreachable; events are retried", zap.Error(err))
			}
			return err
		}
		s.conn = c
	}
	if len(s.resend) > 0 {
		if err := s.flushResendLocked(); err != nil {
			return err
		}
	}
	if s.down {
		s.down = false
		s.log.Info("syslog server connected")
	}
	return nil
}

// flushResendLocked writes the records a broken connection may have lost.
func (s *Syslog) flushResendLocked() error {
	var buf []byte
	for _, r := range s.resend {
		buf = append(buf, r.frame...)
	}
	_ = s.conn.c.SetWriteDeadline(s.now().Add(s.cfg.WriteTimeout))
	if _, err := s.conn.c.Write(buf); err != nil {
		s.breakConnLocked(err)
		return fmt.Errorf("syslog %s: re-send: %w", s.cfg.Address, err)
	}
	s.log.Info("re-sent the events written shortly before the connection broke (at least once: the server may see some twice)",
		zap.Int("events", len(s.resend)))
	s.resentUnreported += len(s.resend)
	now := s.now()
	recs := s.resend
	s.resend = nil
	for i := range recs {
		recs[i].at = now
	}
	s.remember(recs)
	return nil
}

// breakConnLocked closes the current connection and moves the records
// written since ResendWindow before it broke to the re-send list.
func (s *Syslog) breakConnLocked(err error) {
	c := s.conn
	if c == nil {
		return
	}
	s.conn = nil
	_ = c.c.Close()
	<-c.dead // the reader returns once the socket is closed
	brokeAt, cause := c.brokeAt, c.err
	if err != nil && (cause == nil || errors.Is(cause, net.ErrClosed)) {
		cause = err
	}
	cut := brokeAt.Add(-s.cfg.ResendWindow)
	var keep []syslogRecord
	for _, r := range s.sent {
		if !r.at.Before(cut) {
			keep = append(keep, r)
		}
	}
	s.resend = append(s.resend, keep...)
	s.sent, s.sentLen = nil, 0
	if !s.down {
		s.down = true
		s.log.Warn("syslog connection lost; reconnecting", zap.Error(cause), zap.Int("events_to_resend", len(s.resend)))
	}
}

// dial opens a TCP or TLS connection and starts its reader.
func (s *Syslog) dial(ctx context.Context) (*syslogConn, error) {
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	c, err := s.dialer.DialContext(dctx, "tcp", s.cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("syslog %s: connect: %w", s.cfg.Address, err)
	}
	if s.tlsCfg != nil {
		tc := tls.Client(c, s.tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("syslog %s: TLS handshake: %w", s.cfg.Address, err)
		}
		c = tc
	}
	sc := &syslogConn{c: c, dead: make(chan struct{})}
	go func() {
		// A syslog server sends nothing; a read ends only when the
		// connection does.
		var b [256]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				sc.brokeAt, sc.err = time.Now(), err
				close(sc.dead)
				select {
				case s.wake <- struct{}{}:
				default:
				}
				return
			}
		}
	}()
	return sc, nil
}

// reconnectLoop restores a broken connection in the background, with
// jittered backoff, so that events waiting to be re-sent go out even when no
// new event arrives.
func (s *Syslog) reconnectLoop() {
	defer s.wg.Done()
	bo := Backoff{Initial: s.cfg.ReconnectInitial, Max: s.cfg.ReconnectMax}
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		for attempt := 0; ; attempt++ {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			var err error
			if s.conn != nil && s.conn.isDead() || len(s.resend) > 0 {
				err = s.ensureConnLocked(context.Background())
			}
			s.mu.Unlock()
			if err == nil {
				break
			}
			if !sleepCtx(context.Background(), bo.Delay(attempt), s.stop) {
				return
			}
		}
	}
}

// Close stops reconnecting, closes the connection gracefully and waits, up
// to ctx or CloseTimeout, for the server to close its side (it does so after
// reading everything sent).
func (s *Syslog) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.stop)
		s.mu.Unlock()
		s.wg.Wait()

		s.mu.Lock()
		defer s.mu.Unlock()
		ctx, cancel := context.WithTimeout(ctx, s.cfg.CloseTimeout)
		defer cancel()
		var errs []error
		if len(s.resend) > 0 {
			if err := s.ensureConnLocked(ctx); err != nil {
				s.log.Error("events written before the connection broke could not be re-sent before shutdown; the server may not have them",
					zap.Int("events", len(s.resend)), zap.Error(err))
				errs = append(errs, err)
			}
		}
		if c := s.conn; c != nil {
			s.conn = nil
			if err := s.closeConn(ctx, c); err != nil {
				errs = append(errs, err)
			}
		}
		if s.ownDL {
			if err := s.dl.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// closeConn half-closes c and waits for the server's end of stream.
func (s *Syslog) closeConn(ctx context.Context, c *syslogConn) error {
	if c.dead == nil || s.cfg.Network == SyslogUDP {
		return c.c.Close()
	}
	var werr error
	switch cc := c.c.(type) {
	case *tls.Conn:
		werr = cc.CloseWrite()
		if tcp, ok := cc.NetConn().(*net.TCPConn); ok && werr == nil {
			werr = tcp.CloseWrite()
		}
	case *net.TCPConn:
		werr = cc.CloseWrite()
	}
	select {
	case <-c.dead:
	case <-ctx.Done():
	}
	_ = c.c.Close()
	<-c.dead
	switch {
	case werr != nil:
		return fmt.Errorf("syslog %s: close: %w", s.cfg.Address, werr)
	case errors.Is(c.err, io.EOF):
		return nil // the server read everything and closed
	case errors.Is(c.err, net.ErrClosed):
		s.log.Warn("syslog server did not close the connection before the close timeout; the last events may not have been read",
			zap.Int("events", len(s.sent)))
		return nil
	default:
		s.log.Warn("syslog connection ended with an error at close; the last events may be lost",
			zap.Int("events", len(s.sent)), zap.Error(c.err))
		return nil
	}
}
