package testserver

import (
	"os/exec"
	"syscall"
	"time"
)

// proc is a test server's running process: exited is closed once it has
// been waited for. The zero proc is a stopped server.
type proc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// stop sends SIGTERM and waits, with SIGKILL after grace; a stopped server
// is left as it is.
func (p *proc) stop(grace time.Duration) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	p.cmd = nil
}

// kill ends the server with SIGKILL, as a crash would, and waits.
func (p *proc) kill() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
}
