package dashboard

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"
)

// ErrNotTerminal is returned when stdout is not a terminal.
var ErrNotTerminal = errors.New("--dashboard needs a terminal on stdout, and stdout is a pipe or a file; " +
	"run it in a terminal, or drop --dashboard and use --sink file:PATH")

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool { return f != nil && term.IsTerminal(f.Fd()) }

// Run shows the dashboard on out, reading keys from in, until the user quits
// (q, ctrl+c), the terminal goes away (in reaches its end: the ssh session or
// the terminal window closed) or ctx is done (the run ended). It returns
// after restoring the terminal. Polls reach it through feed.
func Run(ctx context.Context, feed *Feed, opts Options, in, out *os.File) error {
	if !IsTerminal(out) {
		return ErrNotTerminal
	}
	w, h, err := term.GetSize(out.Fd())
	if err != nil || w <= 0 || h <= 0 {
		w, h = 80, 24
	}
	m := NewModel(opts, w, h)
	// A hung-up terminal reads as end of file, which Bubble Tea takes as "no
	// more keys" and runs on; the sensor would then run for ever with no
	// screen (its SIGHUP is "reload"). The end of a terminal's input quits
	// like q (a file or /dev/null on stdin only means no keys, as before).
	var input io.Reader // nil: no keys
	keys := &ttyInput{File: in}
	if in != nil {
		input = keys
	}
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithInput(input), tea.WithOutput(out),
		tea.WithoutSignalHandler()) // SIGINT/SIGTERM stop the pipeline, which ends ctx
	if IsTerminal(in) {
		keys.gone = p.Quit
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(ctx, stop, feed, &m.opts, p.Send)
	}()
	_, err = p.Run()
	close(stop)
	wg.Wait()
	return err
}

// ttyInput is the terminal's input that calls gone, once, when it ends (a
// hangup reads as end of file, or EIO). It stays an *os.File to Bubble Tea,
// so raw mode and cancellable reads work as on the plain file.
type ttyInput struct {
	*os.File
	gone func()
	once sync.Once
}

func (t *ttyInput) Read(b []byte) (int, error) {
	n, err := t.File.Read(b)
	if n == 0 && (errors.Is(err, io.EOF) || errors.Is(err, syscall.EIO)) && t.gone != nil {
		t.once.Do(t.gone)
	}
	return n, err
}

// pump moves polls from the feed to the program, preparing the rows off the
// UI goroutine; while send blocks (the UI is busy), the feed coalesces.
func pump(ctx context.Context, stop <-chan struct{}, feed *Feed, opts *Options, send func(tea.Msg)) {
	cls := classify{homeNet: opts.HomeNet, risky: opts.RiskyPorts}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	sinks := func() []SinkStat {
		if opts.Sinks == nil {
			return []SinkStat{}
		}
		return opts.Sinks()
	}
	send(tickMsg{now: time.Now(), sinks: sinks()})
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			send(tickMsg{now: time.Now(), sinks: sinks()})
			send(endMsg{})
			return
		case <-feed.wake:
			send(prepare(feed.take(), &cls, opts))
		case now := <-tick.C:
			send(tickMsg{now: now, sinks: sinks()})
		}
	}
}

// prepare turns a mailbox's content into a dataMsg.
func prepare(u pollUpdate, cls *classify, opts *Options) dataMsg {
	d := dataMsg{counts: u.counts, polls: u.polls, dropped: u.dropped, hasSnap: u.snap != nil}
	if n := len(u.alerts); n > 0 {
		if n > maxEvents {
			u.alerts = u.alerts[n-maxEvents:]
		}
		d.events = make([]Event, len(u.alerts))
		for i := range u.alerts {
			d.events[i] = newEvent(&u.alerts[i], opts.Lookup)
		}
	}
	if u.snap != nil {
		d.at = u.snap.Time
		d.conns, d.listeners = cls.rows(u.snap)
		d.sys = systemOf(u.snap)
	}
	return d
}
