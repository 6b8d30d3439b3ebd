package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// ReportPath is where a runnel server takes the ProcessReports of the
// `runnel run` processes running pipelines against it.
const ReportPath = "/api/pipelines/report"

// MaxProcessReport bounds the body of one ProcessReport.
const MaxProcessReport = 1 << 20

// ProcessReport is what a process running pipelines (`runnel run`) tells
// the runnel server its pipelines read from, so that the server's
// dashboard shows them beside its own: POST ReportPath, JSON, signed with
// Signature Version 4 as the Kinesis API is.
type ProcessReport struct {
	// Process identifies the process; made at its start, unique.
	Process string    `json:"process"`
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Started time.Time `json:"started"`
	// IntervalSeconds is how often the process reports; the server marks
	// its pipelines stale when three reports are missed.
	IntervalSeconds float64 `json:"intervalSeconds"`
	// Final is set on the last report of a process that stops: the server
	// drops its pipelines at once.
	Final     bool             `json:"final,omitempty"`
	Pipelines []PipelineStatus `json:"pipelines"`
	Results   []PipelineReport `json:"results,omitempty"`
}

// UplinkConfig says where and how a Runner reports.
type UplinkConfig struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:4567. Required.
	URL string
	// HTTPClient sends the reports; default http.DefaultClient. The
	// Kinesis client's own (it trusts the same certificates) fits.
	HTTPClient aws.HTTPClient
	// Credentials and Region sign the reports (service "kinesis").
	// Required.
	Credentials aws.CredentialsProvider
	Region      string
	// Interval is how often to report. Default 2s.
	Interval time.Duration
	// Logger receives a WARN line when reporting starts failing and an
	// INFO line when it works again. Default: discard.
	Logger *slog.Logger
}

// uplinkTimeout bounds one report.
const uplinkTimeout = 5 * time.Second

// Uplink reports r's status to the server cfg names every cfg.Interval
// until ctx is done, then sends a final report (within a few seconds) and
// returns. A report that fails is logged, once until reporting works
// again, and retried at the next interval: the pipelines run regardless.
func (r *Runner) Uplink(ctx context.Context, cfg UplinkConfig) {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	rep := ProcessReport{
		Process: rand.Text(), Host: host, PID: os.Getpid(), Started: time.Now().UTC(),
		IntervalSeconds: cfg.Interval.Seconds(),
	}
	u := &uplink{cfg: cfg, url: strings.TrimRight(cfg.URL, "/") + ReportPath}
	t := time.NewTicker(cfg.Interval)
	defer t.Stop()
	for {
		rep.Pipelines, rep.Results = r.Status(), r.Reports()
		u.send(ctx, &rep)
		select {
		case <-ctx.Done():
			rep.Final, rep.Pipelines, rep.Results = true, r.Status(), r.Reports()
			u.send(context.WithoutCancel(ctx), &rep)
			return
		case <-t.C:
		}
	}
}

type uplink struct {
	cfg     UplinkConfig
	url     string
	failing string // the last failure logged, "" while reports work
}

func (u *uplink) send(parent context.Context, rep *ProcessReport) {
	ctx, cancel := context.WithTimeout(parent, uplinkTimeout)
	defer cancel()
	err := u.post(ctx, rep)
	switch {
	case err != nil && parent.Err() != nil:
		// Cut short by the process stopping: the final report, sent
		// next, says the pipelines have gone.
	case err != nil && err.Error() != u.failing:
		u.failing = err.Error()
		u.cfg.Logger.Warn("reporting the pipelines' status to the server; the pipelines run on, the server's dashboard does not show them",
			"url", u.url, "err", err)
	case err == nil && u.failing != "":
		u.failing = ""
		u.cfg.Logger.Info("reporting the pipelines' status to the server again", "url", u.url)
	}
}

func (u *uplink) post(ctx context.Context, rep *ProcessReport) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	creds, err := u.cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesis", u.cfg.Region, time.Now()); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	resp, err := u.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(msg, &e) == nil && e.Error != "" {
		return fmt.Errorf("%s: %s", resp.Status, e.Error)
	}
	return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
}
