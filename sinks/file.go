package sinks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"go.uber.org/zap"
)

// File defaults (Filebeat's file output: 10 MiB, 7 files, 0600).
const (
	DefaultFileMaxSizeMB = 10
	DefaultFileMaxFiles  = 7
	fileMode             = 0o600
	fileDirMode          = 0o700
)

// FileConfig configures the rotating NDJSON file sink.
type FileConfig struct {
	// Path of the live file, e.g. /var/log/netsentinel/alerts.ndjson.
	Path string `yaml:"path"`
	// MaxSizeMB rotates the file before a line would take it past this
	// size in MiB (default 10).
	MaxSizeMB int `yaml:"max_size_mb"`
	// MaxFiles is the number of files kept in total, the live one included
	// (default 7: path, path.1 ... path.6).
	MaxFiles int `yaml:"max_files"`
}

// WithDefaults fills zero values.
func (c FileConfig) WithDefaults() FileConfig {
	if c.MaxSizeMB <= 0 {
		c.MaxSizeMB = DefaultFileMaxSizeMB
	}
	if c.MaxFiles <= 0 {
		c.MaxFiles = DefaultFileMaxFiles
	}
	return c
}

// Validate checks the config without I/O.
func (c FileConfig) Validate() error {
	switch {
	case c.Path == "":
		return errors.New("file.path: empty")
	case c.MaxSizeMB < 0:
		return fmt.Errorf("file.max_size_mb: negative (%d)", c.MaxSizeMB)
	case c.MaxFiles < 0:
		return fmt.Errorf("file.max_files: negative (%d)", c.MaxFiles)
	}
	return nil
}

// File appends events as NDJSON to a file, one write per event, rotating by
// size with numbered backups like Filebeat and logrotate: when the next line
// would exceed the limit, path.(N-2) → path.(N-1), …, path → path.1, and a
// new path is created; path.1 is always the most recent backup and at most
// MaxFiles files exist. A line is never split across files (a line larger
// than the limit gets a file of its own) and a failed partial write is cut
// back, so every file holds whole lines only. Files are created 0600 (an
// existing file with wider permissions is tightened to 0600), missing
// directories 0700.
//
// Reopen (wired to SIGHUP) reopens path after an external tool such as
// logrotate moved it away. A full disk returns an error naming the file; the
// runner retries, and the process keeps running.
type File struct {
	log      *zap.Logger
	path     string
	maxBytes int64
	maxFiles int

	mu     sync.Mutex
	f      *os.File
	size   int64
	buf    []byte
	closed bool
}

// errFileClosed is returned by Write and Reopen after Close.
var errFileClosed = errors.New("closed")

// NewFile validates cfg, creates the directory if needed and opens the file
// for appending.
func NewFile(cfg FileConfig, log *zap.Logger) (*File, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = zap.NewNop()
	}
	fs := &File{
		log:      log.With(zap.String("sink", KindFile), zap.String("path", cfg.Path)),
		path:     cfg.Path,
		maxBytes: int64(cfg.MaxSizeMB) << 20,
		maxFiles: cfg.MaxFiles,
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), fileDirMode); err != nil {
		return nil, fmt.Errorf("file sink %s: create directory: %w", cfg.Path, err)
	}
	f, size, err := fs.open()
	if err != nil {
		return nil, err
	}
	fs.f, fs.size = f, size
	return fs, nil
}

// Name is "file:" + path.
func (fs *File) Name() string { return KindFile + ":" + fs.path }

// Path is the live file's path.
func (fs *File) Path() string { return fs.path }

// open opens (creating, appending) the live file, tightens its mode to 0600
// and returns its current size.
func (fs *File) open() (*os.File, int64, error) {
	f, err := os.OpenFile(fs.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, fileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("file sink %s: open: %w", fs.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("file sink %s: stat: %w", fs.path, err)
	}
	if st.Mode().Perm()&^fileMode != 0 {
		if err := f.Chmod(fileMode); err != nil {
			fs.log.Warn("cannot tighten file mode to 0600", zap.Error(err))
		} else {
			fs.log.Info("tightened file mode to 0600", zap.Stringer("was", st.Mode().Perm()))
		}
	}
	return f, st.Size(), nil
}

// Write appends each event as one line, rotating before a line that would
// take the file past the size limit. On failure the events not written are
// Retry, with an error naming the file.
func (fs *File) Write(ctx context.Context, batch []Event) ([]Outcome, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return nil, fmt.Errorf("file sink %s: %w: %w", fs.path, ErrPermanent, errFileClosed)
	}
	for i, ev := range batch {
		if err := ctx.Err(); err != nil {
			return retryRest(batch, i, err)
		}
		if err := fs.writeLine(ev.Body); err != nil {
			return retryRest(batch, i, err)
		}
	}
	if cap(fs.buf) > 1<<20 {
		fs.buf = nil
	}
	return retryRest(batch, len(batch), nil)
}

func (fs *File) writeLine(body []byte) error {
	if fs.f == nil { // a previous Reopen or rotation failed: try again
		f, size, err := fs.open()
		if err != nil {
			return err
		}
		fs.f, fs.size = f, size
	}
	fs.buf = appendLine(fs.buf[:0], body)
	if fs.size > 0 && fs.size+int64(len(fs.buf)) > fs.maxBytes {
		if err := fs.rotate(); err != nil {
			return err
		}
	}
	n, err := fs.f.Write(fs.buf)
	if err != nil {
		if n > 0 {
			// Cut the partial line so the file holds whole lines only.
			if terr := fs.f.Truncate(fs.size); terr != nil {
				fs.log.Error("cannot remove partial line", zap.Error(terr))
				fs.size += int64(n)
			}
		}
		if errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("file sink %s: disk full: %w", fs.path, err)
		}
		return fmt.Errorf("file sink %s: write: %w", fs.path, err)
	}
	fs.size += int64(n)
	return nil
}

// backup is the name of the i-th backup (1 = newest).
func (fs *File) backup(i int) string { return fs.path + "." + strconv.Itoa(i) }

// rotate shifts the backups, moves the live file to path.1 and opens a new
// live file. With MaxFiles 1 the live file is simply replaced.
func (fs *File) rotate() error {
	if err := fs.f.Close(); err != nil {
		fs.log.Warn("close before rotation", zap.Error(err))
	}
	fs.f = nil
	keep := fs.maxFiles - 1 // backups kept
	if keep <= 0 {
		if err := os.Remove(fs.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file sink %s: rotate: %w", fs.path, err)
		}
	} else {
		if err := os.Remove(fs.backup(keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file sink %s: rotate: %w", fs.path, err)
		}
		for i := keep - 1; i >= 1; i-- {
			if err := os.Rename(fs.backup(i), fs.backup(i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("file sink %s: rotate: %w", fs.path, err)
			}
		}
		if err := os.Rename(fs.path, fs.backup(1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("file sink %s: rotate: %w", fs.path, err)
		}
	}
	f, size, err := fs.open()
	if err != nil {
		return err
	}
	fs.f, fs.size = f, size
	return nil
}

// Reopen closes the current file and opens path again (creating it 0600 if
// it was moved away). Call it on SIGHUP after logrotate. If the open fails
// the old file stays in use and the error is returned.
func (fs *File) Reopen() error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.closed {
		return fmt.Errorf("file sink %s: reopen: %w", fs.path, errFileClosed)
	}
	f, size, err := fs.open()
	if err != nil {
		return err
	}
	if fs.f != nil {
		if err := fs.f.Close(); err != nil {
			fs.log.Warn("close on reopen", zap.Error(err))
		}
	}
	fs.f, fs.size = f, size
	fs.log.Info("file reopened")
	return nil
}

// Close syncs and closes the file.
func (fs *File) Close(context.Context) error {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.closed = true
	if fs.f == nil {
		return nil
	}
	serr := fs.f.Sync()
	cerr := fs.f.Close()
	fs.f = nil
	if err := errors.Join(serr, cerr); err != nil {
		return fmt.Errorf("file sink %s: close: %w", fs.path, err)
	}
	return nil
}

// Reopener is implemented by sinks that reopen their output on SIGHUP.
type Reopener interface{ Reopen() error }
