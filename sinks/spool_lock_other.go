//go:build !unix

package sinks

import "os"

// lockSpoolDir is a no-op where flock does not exist: there, do not point
// two instances at one spool.dir.
func lockSpoolDir(string) (*os.File, error) { return nil, nil }
