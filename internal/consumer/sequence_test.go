package consumer_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/kinesistest"
)

// seq39 holds a data directory and an embedded lease store written by
// runnel before sequence numbers had 56 digits (testdata/seq39/README).
const seq39 = "../stream/testdata/seq39"

// A checkpoint of 39 digits, written before sequence numbers had 56,
// resumes at the record right after it, whichever store holds it; the
// checkpoints then move on in the 56-digit form.
func TestCheckpointFromBeforeFiftySixDigitsResumesAfterIt(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(seq39, "expect.json"))
	require.NoError(t, err)
	var fixture struct {
		Records []struct {
			Shard string `json:"shard"`
			Data  string `json:"data"`
		} `json:"records"`
		Checkpoints map[string]string `json:"checkpoints"`
	}
	require.NoError(t, json.Unmarshal(b, &fixture))

	stores := map[string]func(t *testing.T) consumer.LeaseStore{
		"embedded store written before": func(t *testing.T) consumer.LeaseStore {
			dir := t.TempDir()
			require.NoError(t, os.CopyFS(dir, os.DirFS(filepath.Join(seq39, "leases"))))
			db, err := consumer.OpenLeaseDB(context.Background(), dir, nil)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			s, err := db.Store(context.Background(), "app")
			require.NoError(t, err)
			return s
		},
		"DynamoDB lease table": func(t *testing.T) consumer.LeaseStore {
			s := dynamoStore(t, startDynalite(t), "app")
			for shard, seq := range fixture.Checkpoints {
				require.NoError(t, s.CreateLease(context.Background(), consumer.Lease{Key: shard, Checkpoint: consumer.Checkpoint{SequenceNumber: seq}}))
			}
			return s
		},
	}
	for name, store := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			leases := store(t)
			before, err := leases.ListLeases(context.Background())
			require.NoError(t, err)
			require.Len(t, before, len(fixture.Checkpoints))
			for _, l := range before {
				require.Len(t, l.Checkpoint.SequenceNumber, 39, "the fixture's checkpoints are of the old form")
			}

			e := envFor(t, kinesistest.StartCopy(t, filepath.Join(seq39, "data")))
			want := map[string][]string{} // per shard, the records after its checkpoint
			seen := map[string]int{}
			for _, r := range fixture.Records {
				if seen[r.Shard]++; seen[r.Shard] > 2 { // checkpointed at the second
					want[r.Shard] = append(want[r.Shard], r.Data)
				}
			}
			h := &recorder{}
			w := startWorker(t, baseConfig(e, "s", leases, h))
			eventually(t, 20*time.Second, "the records after the checkpoints", func() bool { return len(h.deliveries()) >= 8 })
			got := map[string][]string{}
			for _, d := range h.deliveries() {
				require.Len(t, d.seq, 56)
				got[d.shard] = append(got[d.shard], d.data)
			}
			require.Equal(t, want, got, "every record after the checkpoint once, none before")

			eventually(t, 10*time.Second, "checkpoints in the 56-digit form", func() bool {
				ls, err := leases.ListLeases(context.Background())
				require.NoError(t, err)
				for _, l := range ls {
					if len(l.Checkpoint.SequenceNumber) != 56 {
						return false
					}
				}
				return len(ls) == len(fixture.Checkpoints)
			})
			w.stop(t)
		})
	}
}
