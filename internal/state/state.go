// Package state keeps what must survive a restart in the state directory:
// the detection cooldown table, so that a condition still within its
// cooldown is not alerted again under a new event id. The file is written
// atomically (temporary file, fsync, rename; mode 0600 in a 0700 directory)
// and bounded in entries; a damaged file is an error for the caller to
// report once and ignore.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/netsentinel/netsentinel/detect"
	"github.com/netsentinel/netsentinel/internal/fsutil"
)

// CooldownsFile is the cooldown state's file name in the state directory.
const CooldownsFile = "cooldowns.json"

// MaxCooldowns caps the entries saved (the most recently seen are kept).
const MaxCooldowns = 10000

// maxFileBytes caps what Load reads: MaxCooldowns entries with long entities
// stay well under it.
const maxFileBytes = 16 << 20

// formatVersion is the file's "version"; another value is a damaged file.
const formatVersion = 1

type cooldownFile struct {
	Version   int                    `json:"version"`
	SavedAt   time.Time              `json:"saved_at"`
	Cooldowns []detect.CooldownEntry `json:"cooldowns"`
}

// Dir is the state directory: dir when set, else netsentinel-state beside
// the report (as the spool defaults to netsentinel-spool there).
func Dir(dir, reportPath string) string {
	if dir != "" {
		return dir
	}
	return filepath.Join(filepath.Dir(reportPath), "netsentinel-state")
}

// SaveCooldowns writes entries (at most MaxCooldowns, the first ones kept:
// Engine.Cooldowns lists the most recently seen first) to dir/cooldowns.json
// atomically, creating dir (0700) when missing.
func SaveCooldowns(dir string, entries []detect.CooldownEntry, now time.Time) error {
	if len(entries) > MaxCooldowns {
		entries = entries[:MaxCooldowns]
	}
	if entries == nil {
		entries = []detect.CooldownEntry{}
	}
	b, err := json.Marshal(cooldownFile{Version: formatVersion, SavedAt: now.UTC(), Cooldowns: entries})
	if err != nil {
		return fmt.Errorf("state: encoding cooldowns: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, CooldownsFile), append(b, '\n')); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// LoadCooldowns reads dir/cooldowns.json. A missing file is no state (nil,
// nil); an unreadable, oversized or malformed one is an error naming it.
func LoadCooldowns(dir string) ([]detect.CooldownEntry, error) {
	path := filepath.Join(dir, CooldownsFile)
	data, err := fsutil.ReadFileCapped(path, maxFileBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	var cf cooldownFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cf); err != nil {
		return nil, fmt.Errorf("state: %s: %w", path, err)
	}
	if cf.Version != formatVersion {
		return nil, fmt.Errorf("state: %s: version %d, want %d", path, cf.Version, formatVersion)
	}
	if len(cf.Cooldowns) > MaxCooldowns {
		cf.Cooldowns = cf.Cooldowns[:MaxCooldowns]
	}
	return cf.Cooldowns, nil
}
