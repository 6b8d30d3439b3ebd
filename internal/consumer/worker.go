package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// Worker is one member of a consumer application: it takes its fair share
// of the application's shard leases, processes those shards, and gives
// them up gracefully when another worker takes them or when it stops.
type Worker struct {
	cfg Config
}

// NewWorker validates cfg and returns a Worker; it does no I/O.
func NewWorker(cfg Config) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("consumer configuration: %w", err)
	}
	cfg = cfg.withDefaults()
	if cfg.WorkerID == "" {
		cfg.WorkerID = defaultWorkerID()
	}
	return &Worker{cfg: cfg}, nil
}

func defaultWorkerID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// ID returns the worker id used in leases.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Run processes the stream until ctx is done, then stops every shard
// gracefully (the batch in flight finishes and is checkpointed) and
// releases its leases so other workers take them at once. It returns nil
// after a graceful stop, or the error that made it stop.
// Run may be called once.
func (w *Worker) Run(ctx context.Context) error {
	return errors.New("consumer: Worker.Run is being implemented")
}

// Status returns a snapshot of the worker. It is safe to call at any time
// from any goroutine.
func (w *Worker) Status() Status {
	return Status{Application: w.cfg.Application, Stream: w.cfg.Stream, WorkerID: w.cfg.WorkerID}
}
