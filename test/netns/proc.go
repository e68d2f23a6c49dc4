//go:build linux

package netns

import (
	"os/exec"
	"syscall"
	"time"
)

func setPgid(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
}

func killGroup(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = cmd.Process.Kill()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
}

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// SignalChild sends sig to the program nsenter or `ip netns exec` started:
// the deepest descendant of cmd's process (nsenter forks when entering a PID
// namespace, so signalling cmd itself would not reach the program).
func SignalChild(cmd *exec.Cmd, sig syscall.Signal) error {
	pid := findChild(cmd.Process.Pid)
	if pid <= 0 {
		pid = cmd.Process.Pid
	}
	return syscall.Kill(pid, sig)
}
