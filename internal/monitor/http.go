package monitor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// staleAfter is how many poll intervals may pass without a successful poll
// before /healthz fails.
const staleAfter = 3

// Healthy reports whether the poll loop is polling: the last successful
// poll (or the start, before the first) is at most three intervals old.
func (m *Monitor) Healthy() (bool, string) {
	last := m.started
	if n := m.lastPoll.Load(); n != 0 {
		last = time.Unix(0, n)
	}
	age := m.now().Sub(last)
	limit := staleAfter * m.interval
	if age > limit {
		if m.lastPoll.Load() == 0 {
			return false, fmt.Sprintf("no successful poll since the start %s ago (limit %s: 3 × interval %s)", age.Round(time.Millisecond), limit, m.interval)
		}
		return false, fmt.Sprintf("last successful poll %s ago (limit %s: 3 × interval %s)", age.Round(time.Millisecond), limit, m.interval)
	}
	return true, fmt.Sprintf("ok: last successful poll %s ago", age.Round(time.Millisecond))
}

// Ready reports whether every sink is open and none is failing; the reason
// names each sink that is not.
func (m *Monitor) Ready() (bool, string) {
	m.mu.Lock()
	list := append([]*Sink(nil), m.sinks...)
	m.mu.Unlock()
	if !m.opened.Load() {
		return false, "starting: sinks not opened yet"
	}
	var bad []string
	for _, s := range list {
		if ok, why := s.ready(); !ok {
			bad = append(bad, why)
		}
	}
	if len(bad) > 0 {
		return false, strings.Join(bad, "; ")
	}
	return true, fmt.Sprintf("ok: %d sinks ready", len(list))
}

// Handler serves /metrics, /healthz and /readyz.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { status(w, m.Healthy) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { status(w, m.Ready) })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "netsentinel: /metrics /healthz /readyz")
	})
	return mux
}

func status(w http.ResponseWriter, check func() (bool, string)) {
	ok, msg := check()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	fmt.Fprintln(w, oneLine(msg))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Server is the running endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// Addr is the address it listens on (the real port when 0 was asked).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Start listens on addr (HOST:PORT) and serves until Close.
func (m *Monitor) Start(addr string, log *zap.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.address %s: %w", addr, err)
	}
	s := &Server{
		srv: &http.Server{
			Handler:           m.Handler(),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       60 * time.Second,
			MaxHeaderBytes:    16 << 10,
		},
		ln: ln, done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("monitoring endpoint stopped", zap.Error(err))
		}
	}()
	log.Info("monitoring endpoint listening", zap.String("http_address", s.Addr()),
		zap.Strings("paths", []string{"/metrics", "/healthz", "/readyz"}))
	return s, nil
}

// Close stops the endpoint, waiting up to 5 s for requests in flight.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}
