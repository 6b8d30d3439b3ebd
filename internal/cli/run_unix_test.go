//go:build unix

package cli

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestStateDirLockSaysWhatToDo: a second run on a state directory in use is
// refused with the directory and the way out, and the directory is free
// again once the first run lets go of it.
func TestStateDirLockSaysWhatToDo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	unlock, err := lockStateDir(dir)
	require.NoError(t, err)

	_, err = lockStateDir(dir)
	require.Error(t, err)
	require.Contains(t, err.Error(), "state directory "+dir+" is in use by another runnel run")
	require.Contains(t, err.Error(), "--state-dir")

	unlock()
	unlock2, err := lockStateDir(dir)
	require.NoError(t, err)
	unlock2()
}
