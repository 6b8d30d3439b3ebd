//go:build unix

package runneltest

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockBuilds takes a lock shared by every test process of the machine's
// user, held while one of them runs go build.
func lockBuilds() (unlock func(), err error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("runneltest-build-%d.lock", os.Getuid()))
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking builds: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking builds: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
