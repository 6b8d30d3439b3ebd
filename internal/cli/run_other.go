//go:build !unix

package cli

import "os"

var statusSignals []os.Signal

func lockStateDir(string) (func(), error) { return func() {}, nil }

// lockExclusive says whether lockStateDir keeps other processes out.
const lockExclusive = false
