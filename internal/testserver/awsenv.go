package testserver

import (
	"os"
	"strings"
	"testing"
)

// WithoutAWSCredentials leaves the test as a user with no AWS setup:
// HOME is an empty directory (no ~/.aws) and no AWS_* variable is set
// (AWS_CA_BUNDLE, AWS_PROFILE, keys and endpoints alike), so whatever
// credentials a client ends up with come from runnel itself. The
// variables are restored when the test ends; like t.Setenv it cannot be
// used in parallel tests.
func WithoutAWSCredentials(t testing.TB) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "AWS_") {
			t.Setenv(name, "") // registers the restore
			if err := os.Unsetenv(name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
