//go:build !unix

package cli

import "os"

var statusSignals []os.Signal

func lockStateDir(string) (func(), error) { return func() {}, nil }
