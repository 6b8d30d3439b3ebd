package stream

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// readLineage reads a whole stream the way KCL does: a shard only after its
// parents are finished, each shard to its end (closed) or to the tip (open).
func readLineage(t *testing.T, s *Service, name string) map[string][]Record {
	t.Helper()
	d, err := s.Describe(name)
	require.NoError(t, err)
	done := map[string]bool{}
	out := map[string][]Record{}
	for pending := d.Shards; len(pending) > 0; {
		var next []Shard
		progressed := false
		for _, sh := range pending {
			if (sh.ParentShardID != "" && !done[sh.ParentShardID] && known(d, sh.ParentShardID)) ||
				(sh.AdjacentParentShardID != "" && !done[sh.AdjacentParentShardID] && known(d, sh.AdjacentParentShardID)) {
				next = append(next, sh)
				continue
			}
			it, err := s.ShardIterator(name, sh.ID, IteratorSpec{Type: TrimHorizon})
			require.NoError(t, err)
			for range 10000 {
				res, err := s.Records(context.Background(), it, 7)
				require.NoError(t, err)
				out[sh.ID] = append(out[sh.ID], res.Records...)
				if res.NextIterator == "" {
					require.Equal(t, sh.EndingSequenceNumber != "", true, "only a closed shard ends")
					require.NotEmpty(t, res.ChildShards)
					break
				}
				if len(res.Records) == 0 && sh.EndingSequenceNumber == "" {
					break
				}
				it = res.NextIterator
			}
			done[sh.ID] = true
			progressed = true
		}
		require.True(t, progressed, "lineage has a cycle or a missing parent")
		pending = next
	}
	return out
}

func known(d *Description, id string) bool {
	return slices.ContainsFunc(d.Shards, func(s Shard) bool { return s.ID == id })
}

func TestSplitAndMergeLineage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, nil)
	require.NoError(t, s.CreateStream(ctx, "s", 2, CreateOptions{}))

	put := func(tag string) {
		for i := range 40 {
			_, err := s.Put(ctx, "s", []PutInput{{PartitionKey: fmt.Sprint("k", i%8), Data: []byte(fmt.Sprint(tag, i))}})
			require.NoError(t, err)
		}
	}
	put("a")
	// Split shard 0 in the middle of its range.
	require.NoError(t, s.SplitShard(ctx, "s", "shardId-000000000000", "85070591730234615865843651857942052864"))
	put("b")
	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Len(t, d.Shards, 4)
	require.Equal(t, 3, d.OpenShardCount)
	require.NotEmpty(t, d.Shards[0].EndingSequenceNumber)
	require.Equal(t, "shardId-000000000000", d.Shards[2].ParentShardID)
	require.Equal(t, "85070591730234615865843651857942052863", d.Shards[2].EndingHashKey)
	require.Equal(t, "85070591730234615865843651857942052864", d.Shards[3].StartingHashKey)

	// Merge the second child with shard 1 (adjacent), then put more.
	require.NoError(t, s.MergeShards(ctx, "s", "shardId-000000000003", "shardId-000000000001"))
	put("c")

	// Invalid changes get Kinesis's errors.
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000000", "1"), ErrInvalidArgument, "closed shard")
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000002", "0"), ErrInvalidArgument, "key at the shard start")
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000002", "1"), ErrInvalidArgument, "a one-key child at the start")
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000002", "85070591730234615865843651857942052863"), ErrInvalidArgument,
		"a one-key child at the end")
	require.ErrorIs(t, s.SplitShard(ctx, "s", "shardId-000000000099", "5"), ErrNotFound)
	require.ErrorIs(t, s.MergeShards(ctx, "s", "shardId-000000000002", "shardId-000000000002"), ErrInvalidArgument)

	check := func(s *Service) {
		recs := readLineage(t, s, "s")
		seen := map[string]bool{}
		perKey := map[string][]string{}
		for _, id := range []string{"shardId-000000000000", "shardId-000000000001", "shardId-000000000002", "shardId-000000000003", "shardId-000000000004"} {
			for _, r := range recs[id] {
				require.False(t, seen[string(r.Data)], "read twice: %s", r.Data)
				seen[string(r.Data)] = true
				perKey[r.PartitionKey] = append(perKey[r.PartitionKey], string(r.Data))
			}
		}
		require.Len(t, seen, 120)
		// Per key, the phases a < b < c appear in order.
		for k, data := range perKey {
			phases := ""
			for _, x := range data {
				phases += x[:1]
			}
			require.True(t, slices.IsSorted([]byte(phases)), "key %s out of order: %v", k, data)
		}
	}
	check(s)
	require.NoError(t, s.Close())

	// Lineage and closed shards survive a restart.
	s = open(t, dir, nil)
	defer s.Close()
	check(s)
	_, err = s.Put(ctx, "s", []PutInput{{PartitionKey: "k1", Data: []byte("d")}})
	require.NoError(t, err)
}

func TestUpdateShardCountWhilePutting(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), nil)
	defer s.Close()
	require.NoError(t, s.CreateStream(ctx, "s", 3, CreateOptions{}))

	var wg sync.WaitGroup
	var stop atomic.Bool
	var mu sync.Mutex
	acked := map[string]bool{}
	for w := range 4 {
		wg.Go(func() {
			for i := 0; i < 2000 && !stop.Load(); i++ {
				data := fmt.Sprint(w, "-", i)
				if _, err := s.Put(ctx, "s", []PutInput{{PartitionKey: fmt.Sprint("key", w), Data: []byte(data)}}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[data] = true
				mu.Unlock()
			}
		})
	}
	prev, err := s.UpdateShardCount(ctx, "s", 5)
	require.NoError(t, err)
	require.Equal(t, 3, prev)
	prev, err = s.UpdateShardCount(ctx, "s", 3)
	require.NoError(t, err)
	require.Equal(t, 5, prev)
	stop.Store(true)
	wg.Wait()

	d, err := s.Describe("s")
	require.NoError(t, err)
	require.Equal(t, 3, d.OpenShardCount)
	starts := splitHashRange(3)
	var open []Shard
	for _, sh := range d.Shards {
		if sh.EndingSequenceNumber == "" {
			open = append(open, sh)
		}
	}
	for i, sh := range open {
		require.Equal(t, starts[i].String(), sh.StartingHashKey, "uniform layout")
	}

	_, err = s.UpdateShardCount(ctx, "s", 7)
	require.ErrorIs(t, err, ErrLimitExceeded, "more than double")

	recs := readLineage(t, s, "s")
	got := map[string]bool{}
	perWriter := map[string]int{}
	for _, sh := range d.Shards {
		for _, r := range recs[sh.ID] {
			require.False(t, got[string(r.Data)], "duplicate %s", r.Data)
			got[string(r.Data)] = true
		}
	}
	for data := range acked {
		require.True(t, got[data], "acknowledged record %s lost", data)
	}
	// Per key order across the lineage: replay shards parents-first and
	// check each writer's counter only increases.
	order := readLineageOrder(t, s, d, recs)
	for _, data := range order {
		var w, i int
		fmt.Sscanf(data, "%d-%d", &w, &i)
		key := fmt.Sprint(w)
		require.Equal(t, perWriter[key], i, "writer %d out of order", w)
		perWriter[key]++
	}
}

// readLineageOrder flattens per-shard records parents first, keeping each
// key's records in the order a KCL reader would process them.
func readLineageOrder(t *testing.T, s *Service, d *Description, recs map[string][]Record) []string {
	var out []string
	done := map[string]bool{}
	for len(done) < len(d.Shards) {
		for _, sh := range d.Shards {
			if done[sh.ID] || (sh.ParentShardID != "" && !done[sh.ParentShardID]) || (sh.AdjacentParentShardID != "" && !done[sh.AdjacentParentShardID]) {
				continue
			}
			for _, r := range recs[sh.ID] {
				out = append(out, string(r.Data))
			}
			done[sh.ID] = true
		}
	}
	return out
}
