//go:build unix

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// statusSignals make runnel run print its status.
var statusSignals = []os.Signal{syscall.SIGUSR1}

// lockStateDir takes an exclusive lock on dir, so two runs never share
// one set of lease files.
func lockStateDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state directory %s is in use by another runnel run: stop it, or give this one a directory of its own with --state-dir", dir)
		}
		return nil, fmt.Errorf("locking state directory: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// lockExclusive says whether lockStateDir keeps other processes out.
const lockExclusive = true
