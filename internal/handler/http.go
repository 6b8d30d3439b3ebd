package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/runnel-dev/runnel/internal/lambda"
)

// HTTPConfig configures an HTTP handler.
type HTTPConfig struct {
	// URL receives each event as a POST with a JSON body; required, http
	// or https.
	URL string
	// Headers are added to every request (Content-Type is
	// application/json unless set here).
	Headers map[string]string
	// Timeout bounds one request, response body included. The default is
	// 60s.
	Timeout time.Duration
	// MaxResponseBytes bounds the response body. The default is 6 MiB.
	MaxResponseBytes int64
	// Client sends the requests; nil means a client of its own.
	Client *http.Client
}

// HTTP is a handler that POSTs each event to a URL. A 2xx response's body
// is parsed with lambda.ParseResponse (an empty body is success); any other
// status, a transport error or a timeout is a function error, failing the
// whole batch. So is a 2xx response with an X-Amz-Function-Error header or
// a body of the form {"errorType": ..., "errorMessage": ...} (see
// FunctionError), which is how Lambda and its runtime emulator report an
// unhandled error. Invoke is safe for concurrent use.
type HTTP struct {
	cfg HTTPConfig
}

var (
	_ lambda.Handler = (*HTTP)(nil)
	_ RawInvoker     = (*HTTP)(nil)
)

// NewHTTP validates cfg and returns the handler.
func NewHTTP(cfg HTTPConfig) (*HTTP, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponse
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	var errs []error
	if u, err := url.Parse(cfg.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: want an http or https URL, got %q", cfg.URL))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must be positive, got %v", cfg.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("http handler: %w", err)
	}
	return &HTTP{cfg: cfg}, nil
}

// Invoke POSTs event and parses the response.
func (h *HTTP) Invoke(ctx context.Context, event *lambda.KinesisEvent) (*lambda.Response, error) {
	_, resp, err := h.InvokeRaw(ctx, event)
	return resp, err
}

// InvokeRaw is Invoke that also returns the response body (nil when there
// was no 2xx answer), including when it is a function error.
func (h *HTTP) InvokeRaw(ctx context.Context, event *lambda.KinesisEvent) ([]byte, *lambda.Response, error) {
	body, err := json.Marshal(event)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding event: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("http handler: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range h.cfg.Headers {
		req.Header.Set(k, v)
	}
	res, err := h.cfg.Client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("http handler: %w", err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, h.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("http handler: reading response from %s: %w", h.cfg.URL, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return raw, nil, fmt.Errorf("http handler: %s answered %s: %s", h.cfg.URL, res.Status, excerpt(raw))
	}
	if int64(len(raw)) > h.cfg.MaxResponseBytes {
		return nil, nil, fmt.Errorf("http handler: response from %s is longer than %d bytes", h.cfg.URL, h.cfg.MaxResponseBytes)
	}
	if res.Header.Get("X-Amz-Function-Error") != "" {
		ferr := functionError(raw)
		if ferr == nil {
			ferr = &FunctionError{Type: res.Header.Get("X-Amz-Function-Error"), Message: excerpt(raw)}
		}
		return raw, nil, fmt.Errorf("http handler: %w", ferr)
	}
	if ferr := functionError(raw); ferr != nil {
		return raw, nil, fmt.Errorf("http handler: %w", ferr)
	}
	resp, err := lambda.ParseResponse(raw)
	if err == nil {
		err = lambda.CheckResponse(event, resp)
	}
	if err != nil {
		return raw, nil, fmt.Errorf("http handler: response from %s: %w", h.cfg.URL, err)
	}
	return raw, resp, nil
}

// excerpt returns at most the first 200 bytes of b as text.
func excerpt(b []byte) string {
	const limit = 200
	b = bytes.TrimSpace(b)
	if len(b) > limit {
		return string(b[:limit]) + "..."
	}
	return string(b)
}
