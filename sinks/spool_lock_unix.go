//go:build unix

package sinks

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// lockSpoolDir takes an exclusive advisory lock (flock) on dir/lock, so a
// second netsentinel pointed at the same spool directory fails clearly
// instead of interleaving segments and cursors. The kernel drops the lock
// when the process dies (even SIGKILL), so a crash never leaves it stale.
func lockSpoolDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: spool directory %s is in use by another netsentinel (pid %s); give each instance its own spool.dir",
				ErrSpoolLocked, dir, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("spool lock %s: %w", path, err)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return f, nil
}
