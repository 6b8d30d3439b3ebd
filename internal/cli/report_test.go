package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/dashboard"
	"github.com/runnel-dev/runnel/internal/pipeline"
	"github.com/runnel-dev/runnel/internal/producer/producertest"
	"github.com/runnel-dev/runnel/internal/runneltest"
)

// A `runnel run` process against a server with --auth reports its
// pipelines to the server, signed with its access key: the server's
// dashboard shows them with their figures and results, marks them stale
// when the process stops reporting and drops them when it stops cleanly.
// Unsigned reports, and reports by a key that may not read the source,
// are refused.
func TestRunReportsToServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys.yaml")
	require.NoError(t, os.WriteFile(keys, []byte(`keys:
  - {id: AKIAADMIN, secret: admin-secret, all: true}
  - {id: AKIAOTHER, secret: other-secret, read: [other]}
`), 0o600))
	srv := runneltest.Serve(t, "--data-dir", filepath.Join(dir, "data"), "--fsync", "never", "--auth", keys)
	url := srv.URL

	cfgPath := filepath.Join(dir, "pipelines.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(`streams:
  - name: clicks
    shards: 2
pipelines:
  - name: clicks-count
    source: clicks
    handler:
      type: builtin
      name: count
      options: {key: "{k}", store: local}
`), 0o644))
	adminEnv := []string{"AWS_ACCESS_KEY_ID=AKIAADMIN", "AWS_SECRET_ACCESS_KEY=admin-secret", "AWS_REGION=us-east-1"}
	startRun := func() *runneltest.Process {
		t.Helper()
		p := runneltest.Start(t, adminEnv, "--endpoint", url, "run", cfgPath, "--report-interval", "300ms")
		p.WaitFor(t, regexp.MustCompile(`msg="running pipelines"`), time.Minute)
		return p
	}
	run := startRun()

	client := kinesis.New(kinesis.Options{
		BaseEndpoint: aws.String(url), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIAADMIN", "admin-secret", ""),
	})
	const n = 50
	var entries []types.PutRecordsRequestEntry
	for i := range n {
		entries = append(entries, types.PutRecordsRequestEntry{
			PartitionKey: aws.String(fmt.Sprint(i)), Data: fmt.Appendf(nil, `{"k":"k%d"}`, i%5),
		})
	}
	out, err := client.PutRecords(t.Context(), &kinesis.PutRecordsInput{StreamName: aws.String("clicks"), Records: entries})
	require.NoError(t, err)
	require.Zero(t, aws.ToInt32(out.FailedRecordCount))
	// What the stream holds is what is counted: n records, or more when
	// the SDK sent the call again after losing its answer (delivery is
	// at least once).
	stored := producertest.ReadAll(t, client, "clicks")
	require.GreaterOrEqual(t, len(stored), n)
	perKey := map[string]float64{}
	for _, r := range stored {
		var ev struct{ K string }
		require.NoError(t, json.Unmarshal(r.Data, &ev))
		perKey[ev.K]++
	}

	// The dashboard, logged in with the admin key.
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Post(url+"/api/login", "application/json",
		strings.NewReader(`{"accessKeyId":"AKIAADMIN","secretAccessKey":"admin-secret"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	pipelines := func() dashboard.PipelinesAnswer {
		t.Helper()
		resp, err := browser.Get(url + "/api/pipelines")
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var ans dashboard.PipelinesAnswer
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&ans))
		return ans
	}
	poll := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within a minute; runnel run:\n%s\nserver:\n%s", what, run.Stderr(), srv.Stderr())
			}
			<-time.After(50 * time.Millisecond)
		}
	}
	var seen dashboard.PipelineView
	poll("reported pipeline with every record counted", func() bool {
		ans := pipelines()
		if len(ans.Pipelines) != 1 {
			return false
		}
		seen = ans.Pipelines[0]
		var records int64
		for _, sh := range seen.Worker.Shards {
			records += sh.Records
		}
		return seen.Process != nil && !seen.Process.Stale && records == int64(len(stored))
	})
	require.True(t, pipelines().Running)
	require.Equal(t, "clicks-count", seen.Name)
	require.Equal(t, "clicks", seen.Source)
	require.Equal(t, "builtin count", seen.Handler)
	require.Positive(t, seen.Process.PID)

	// Its results (the counter's top keys, read every few seconds) too.
	var results struct{ Results []dashboard.ResultView }
	poll("reported results", func() bool {
		resp, err := browser.Get(url + "/api/results")
		require.NoError(t, err)
		defer resp.Body.Close()
		results.Results = nil
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&results))
		return len(results.Results) == 1 && len(results.Results[0].TopKeys) == 5
	})
	require.Equal(t, "clicks-count", results.Results[0].Pipeline)
	require.Equal(t, seen.Process.ID, results.Results[0].Process.ID)
	require.Len(t, results.Results[0].TopKeys, 5)
	for _, k := range results.Results[0].TopKeys {
		require.Equal(t, perKey[k.Key], k.Value, "counter %s", k.Key)
	}

	// And the server's /metrics serves its pipelines' figures, labelled
	// with the process, beside the server's own.
	resp, err = browser.Get(url + "/metrics")
	require.NoError(t, err)
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	var counted float64
	for _, m := range fams["runnel_pipeline_records_total"].GetMetric() {
		require.Equal(t, seen.Process.ID, label(m, "process"))
		require.Equal(t, "clicks-count", label(m, "pipeline"))
		counted += m.GetCounter().GetValue()
	}
	require.Equal(t, float64(len(stored)), counted)
	ages := fams["runnel_pipeline_report_age_seconds"].GetMetric()
	require.Len(t, ages, 1)
	require.Equal(t, seen.Process.ID, label(ages[0], "process"))

	// Reports that are not signed, or signed by a key that may not read
	// the pipeline's source, are refused.
	report, err := json.Marshal(pipeline.ProcessReport{
		Process: "intruder", IntervalSeconds: 1,
		Pipelines: []pipeline.PipelineStatus{{Name: "fake", Source: "clicks"}},
	})
	require.NoError(t, err)
	code, msg := postReport(t, url, report, nil)
	require.Equal(t, http.StatusUnauthorized, code, msg)
	require.Contains(t, msg, "Signature Version 4")
	code, msg = postReport(t, url, report, credentials.NewStaticCredentialsProvider("AKIAOTHER", "other-secret", ""))
	require.Equal(t, http.StatusForbidden, code, msg)
	require.Contains(t, msg, "may not read stream clicks")
	code, msg = postReport(t, url, report, credentials.NewStaticCredentialsProvider("AKIAADMIN", "wrong-secret", ""))
	require.Equal(t, http.StatusUnauthorized, code, msg)
	require.Len(t, pipelines().Pipelines, 1, "no refused report shows")

	// Killed, the process stops reporting: its pipeline shows as stale.
	run.Kill()
	poll("stale pipeline after kill -9", func() bool {
		ans := pipelines()
		return len(ans.Pipelines) == 1 && ans.Pipelines[0].Process.Stale
	})

	// A process that stops cleanly takes its pipelines off the dashboard.
	// (The stale one stays for a while beside the new one.)
	run = startRun()
	poll("the second process's pipeline", func() bool {
		for _, p := range pipelines().Pipelines {
			if p.Process != nil && !p.Process.Stale {
				return true
			}
		}
		return false
	})
	require.NoError(t, run.Signal(syscall.SIGTERM))
	<-run.Done()
	require.NoError(t, run.Err(), run.Stderr())
	ans := pipelines()
	require.Len(t, ans.Pipelines, 1, "only the killed process's stale pipeline is left")
	require.True(t, ans.Pipelines[0].Process.Stale)
	require.NotContains(t, run.Stderr(), "level=WARN", "every report of the second process was taken")
}

// postReport posts a process report, signed with creds unless nil, and
// returns the status code and body.
func postReport(t *testing.T, url string, body []byte, creds aws.CredentialsProvider) (int, string) {
	t.Helper()
	ctx := context.Background()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+pipeline.ReportPath, bytes.NewReader(body))
	require.NoError(t, err)
	if creds != nil {
		c, err := creds.Retrieve(ctx)
		require.NoError(t, err)
		sum := sha256.Sum256(body)
		require.NoError(t, v4.NewSigner().SignHTTP(ctx, c, req, hex.EncodeToString(sum[:]), "kinesis", "us-east-1", time.Now()))
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
