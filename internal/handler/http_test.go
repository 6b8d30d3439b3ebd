package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/lambda"
)

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Token") != "t0k" {
			http.Error(w, "bad request shape", http.StatusBadRequest)
			return
		}
		var ev lambda.KinesisEvent
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch string(ev.Records[0].Kinesis.Data) {
		case "ok":
		case "fail":
			_, _ = io.WriteString(w, `{"batchItemFailures":[{"itemIdentifier":"1"}]}`)
		case "500":
			http.Error(w, "database down", http.StatusInternalServerError)
		case "garbage":
			_, _ = io.WriteString(w, "<html>")
		case "function-error":
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			_, _ = io.WriteString(w, `{"errorType":"KeyError","errorMessage":"'x'"}`)
		case "hang":
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
	}))
	defer srv.Close()
	h, err := NewHTTP(HTTPConfig{URL: srv.URL, Headers: map[string]string{"X-Token": "t0k"}, Timeout: 300 * time.Millisecond})
	require.NoError(t, err)
	ctx := context.Background()

	resp, err := h.Invoke(ctx, event("ok"))
	require.NoError(t, err)
	require.Empty(t, resp.BatchItemFailures)

	resp, err = h.Invoke(ctx, event("fail"))
	require.NoError(t, err)
	require.Equal(t, []lambda.BatchItemFailure{{ItemIdentifier: "1"}}, resp.BatchItemFailures)

	_, err = h.Invoke(ctx, event("500"))
	require.ErrorContains(t, err, "500 Internal Server Error: database down")

	_, err = h.Invoke(ctx, event("garbage"))
	require.ErrorIs(t, err, lambda.ErrMalformedResponse)

	_, err = h.Invoke(ctx, event("function-error"))
	var fe *FunctionError
	require.ErrorAs(t, err, &fe)
	require.Equal(t, "KeyError", fe.Type)

	_, err = h.Invoke(ctx, event("hang"))
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestNewHTTPValidates(t *testing.T) {
	for _, u := range []string{"", "ftp://x", "http://", "::"} {
		_, err := NewHTTP(HTTPConfig{URL: u})
		require.ErrorContains(t, err, "url", u)
	}
}

func TestLogAndNoop(t *testing.T) {
	resp, err := Noop.Invoke(context.Background(), event("x"))
	require.NoError(t, err)
	require.Nil(t, resp)

	var buf bytes.Buffer
	_, err = Log(&buf).Invoke(context.Background(), event(`{"a":1}`, "\xff\x00"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	require.Len(t, lines, 2)
	require.JSONEq(t, `{"eventID":"shardId-000000000000:1","partitionKey":"pk","approximateArrivalTimestamp":1.7e9,"data":"{\"a\":1}"}`, lines[0])
	require.JSONEq(t, `{"eventID":"shardId-000000000000:2","partitionKey":"pk","approximateArrivalTimestamp":1.7e9,"dataBase64":"/wA="}`, lines[1])
}

func TestFunctionErrorShape(t *testing.T) {
	require.Nil(t, functionError([]byte(`{}`)))
	require.Nil(t, functionError([]byte(`{"batchItemFailures":[],"errorMessage":"x"}`)))
	require.Nil(t, functionError([]byte(`null`)))
	require.EqualError(t, functionError([]byte(`{"errorMessage":"boom"}`)), "function error: boom")
}
