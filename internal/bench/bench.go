//go:build linux

// Package bench measures the whole agent against the kernel's floor (issue
// 11): it builds the agent and its comparators, creates a network namespace,
// fills it with established loopback connections held by holder processes,
// and runs each command inside it as a child process, taking CPU time (user +
// system) and peak RSS from the child's wait4 rusage.
//
// The programs it builds:
//
//	cmd/netsentinel            the whole agent
//	internal/bench/sockdump    the bare NETLINK_SOCK_DIAG dump (the floor)
//	internal/bench/psconns     gopsutil net.Connections("all")
//	internal/bench/holder      holds N connections (both ends) open
//
// The benchmark command is internal/bench/run (scripts/bench.sh); the test
// suite's guard is test/perf. Everything runs in namespaces created here and
// removed by Close, on loopback only.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Binaries are the built programs.
type Binaries struct {
	Agent, SockDump, PSConns, Holder string
}

// Build compiles the agent and the helper programs into dir, from the module
// that contains moduleDir ("" means the current directory).
func Build(ctx context.Context, moduleDir, dir string) (Binaries, error) {
	env := exec.CommandContext(ctx, "go", "env", "GOMOD")
	env.Dir = moduleDir
	gomod, err := env.Output()
	if err != nil || len(bytes.TrimSpace(gomod)) == 0 {
		return Binaries{}, fmt.Errorf("go env GOMOD in %q: no module (%v)", moduleDir, err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	b := Binaries{
		Agent:    filepath.Join(dir, "netsentinel"),
		SockDump: filepath.Join(dir, "sockdump"),
		PSConns:  filepath.Join(dir, "psconns"),
		Holder:   filepath.Join(dir, "holder"),
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+"/",
		"./cmd/netsentinel", "./internal/bench/sockdump", "./internal/bench/psconns", "./internal/bench/holder")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w: %s", err, bytes.TrimSpace(out))
	}
	return b, nil
}

// NamePrefix starts the name of every namespace this package creates.
const NamePrefix = "nsbench"

// Namespace is a network namespace with only loopback, up.
type Namespace struct {
	Name    string
	holders []*holder
}

// holder is one running holder process.
type holder struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	stderr *syncBuffer
	done   chan struct{} // closed when it exited
	err    error         // its exit, valid once done is closed
}

// NewNamespace creates the namespace NamePrefix<pid><suffix> after removing
// namespaces left by earlier runs whose process is gone.
func NewNamespace(ctx context.Context, suffix string) (*Namespace, error) {
	RemoveStale(ctx)
	n := &Namespace{Name: fmt.Sprintf("%s%d%s", NamePrefix, os.Getpid(), suffix)}
	_ = ipCmd(ctx, "netns", "del", n.Name)
	if err := ipCmd(ctx, "netns", "add", n.Name); err != nil {
		return nil, err
	}
	if err := ipCmd(ctx, "-n", n.Name, "link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// RemoveStale deletes namespaces named NamePrefix<pid>... whose pid is not
// a running process (a benchmark killed before its cleanup ran).
func RemoveStale(ctx context.Context) {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), NamePrefix)
		if !ok {
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		pid, err := strconv.Atoi(rest[:i])
		if err != nil {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = ipCmd(ctx, "netns", "del", e.Name())
		}
	}
}

func ipCmd(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Close ends the holders and deletes the namespace.
func (n *Namespace) Close() error {
	n.StopHolders()
	return ipCmd(context.Background(), "netns", "del", n.Name)
}

// start starts cmd inside the namespace: the child is forked from an OS
// thread switched into it (a child inherits its forking thread's network
// namespace), so nothing else runs between fork and exec.
func (n *Namespace) start(cmd *exec.Cmd) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return // the thread ends with the goroutine: never reused
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		err = cmd.Start()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // back in the original namespace: reusable
		}
		errc <- err
	}()
	return <-errc
}

// Hold starts holder processes for conns established connections, at most
// perHolder each, and waits until every one is open.
func (n *Namespace) Hold(ctx context.Context, holderBin string, conns, perHolder int) error {
	for left := conns; left > 0; left -= perHolder {
		k := min(left, perHolder)
		cmd := exec.Command(holderBin, "-conns", strconv.Itoa(k))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		h := &holder{cmd: cmd, stdin: stdin, stderr: &syncBuffer{}, done: make(chan struct{})}
		cmd.Stderr = h.stderr
		if err := n.start(cmd); err != nil {
			return fmt.Errorf("start holder: %w", err)
		}
		n.holders = append(n.holders, h)
		line := make(chan string, 1)
		go func() {
			s, _ := bufio.NewReader(stdout).ReadString('\n')
			line <- strings.TrimSpace(s)
			h.err = cmd.Wait()
			close(h.done)
		}()
		select {
		case s := <-line:
			if s != "ready "+strconv.Itoa(k) {
				<-h.done
				return fmt.Errorf("holder of %d connections: %q %s", k, s, strings.TrimSpace(h.stderr.String()))
			}
		case <-time.After(2 * time.Minute):
			return fmt.Errorf("holder of %d connections not ready within 2 minutes", k)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// HoldersAlive returns an error naming a holder that exited (its
// connections are gone) and what it printed.
func (n *Namespace) HoldersAlive() error {
	for _, h := range n.holders {
		select {
		case <-h.done:
			return fmt.Errorf("holder %d exited (%v): %s", h.cmd.Process.Pid, h.err, strings.TrimSpace(h.stderr.String()))
		default:
		}
	}
	return nil
}

// StopHolders closes every holder's connections and waits for it to exit.
func (n *Namespace) StopHolders() {
	for _, h := range n.holders {
		h.stdin.Close()
	}
	for _, h := range n.holders {
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.done
		}
	}
	n.holders = nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Result is what one run of a command cost.
type Result struct {
	CPU    time.Duration // user + system, from wait4
	MaxRSS int64         // peak resident set, bytes
	Wall   time.Duration
	Stdout []byte
	// Samples are the process's CPU time (user + system, /proc/<pid>/stat)
	// at the offsets given to RunSampled.
	Samples []time.Duration
}

// Run runs argv in the namespace with working directory dir and returns its
// cost. A non-zero exit is an error naming the command and its stderr.
func (n *Namespace) Run(ctx context.Context, dir string, argv ...string) (Result, error) {
	return n.RunSampled(ctx, dir, nil, argv...)
}

// RunSampled is Run that also reads the child's CPU time at each offset of
// at (from its start, ascending) while it runs.
func (n *Namespace) RunSampled(ctx context.Context, dir string, at []time.Duration, argv ...string) (Result, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := n.start(cmd); err != nil {
		return Result{}, fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	var res Result
	for _, d := range at {
		select {
		case <-time.After(time.Until(start.Add(d))):
		case <-ctx.Done():
		}
		cpu, err := procCPU(cmd.Process.Pid)
		if err != nil {
			break
		}
		res.Samples = append(res.Samples, cpu)
	}
	err := cmd.Wait()
	res.Wall = time.Since(start)
	res.Stdout = stdout.Bytes()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.CPU = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		res.MaxRSS = ru.Maxrss << 10
	}
	if err != nil {
		return res, fmt.Errorf("%s: %w: %s", filepath.Base(argv[0]), err, lastLines(stderr.String(), 5))
	}
	if len(res.Samples) != len(at) {
		return res, fmt.Errorf("%s: exited before its CPU time was sampled at %v", filepath.Base(argv[0]), at[len(res.Samples)])
	}
	return res, nil
}

// procCPU reads utime + stime of a process from /proc/<pid>/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the comm: state(0) ... utime(11) stime(12), clock ticks (USER_HZ 100).
	if len(f) < 13 {
		return 0, errors.New("short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("malformed stat times")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
