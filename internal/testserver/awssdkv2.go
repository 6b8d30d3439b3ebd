package testserver

import (
	"os"
	"path/filepath"
	"testing"
)

// AWSSDKv2 returns the node_modules directory holding the AWS SDK for
// JavaScript v2 (npm aws-sdk) that .ci/run installs for running Lambda
// functions written for it: under $RUNNEL_AWSSDK_V2, else under
// <user cache dir>/runnel/awssdkv2. It skips the test when it is not
// there (install with `npm install --prefix ~/.cache/runnel/awssdkv2
// aws-sdk@2`), and fails it instead when RUNNEL_INTEGRATION=required.
func AWSSDKv2(t testing.TB) string {
	t.Helper()
	prefix := os.Getenv("RUNNEL_AWSSDK_V2")
	if prefix == "" {
		if d, err := os.UserCacheDir(); err == nil {
			prefix = filepath.Join(d, "runnel", "awssdkv2")
		}
	}
	modules := filepath.Join(prefix, "node_modules")
	if _, err := os.Stat(filepath.Join(modules, "aws-sdk", "package.json")); err != nil {
		msg := "the AWS SDK for JavaScript v2 is needed: npm install --prefix ~/.cache/runnel/awssdkv2 aws-sdk@2, or set RUNNEL_AWSSDK_V2"
		if os.Getenv("RUNNEL_INTEGRATION") == "required" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return modules
}
