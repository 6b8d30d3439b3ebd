package kpl

import (
	"bytes"
	"crypto/md5"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestAggregateGolden(t *testing.T) {
	// One record, key "a", data "x": partition_key_table "a", then
	// Record{partition_key_index: 0, data: "x"}.
	msg := []byte{0x0a, 0x01, 'a', 0x1a, 0x05, 0x08, 0x00, 0x1a, 0x01, 'x'}
	sum := md5.Sum(msg)
	want := append(append([]byte{0xF3, 0x89, 0x9A, 0xC2}, msg...), sum[:]...)

	got, err := Aggregate([]Record{{PartitionKey: "a", Data: []byte("x")}})
	require.NoError(t, err)
	require.Equal(t, want, got.Data)
	require.Equal(t, "a", got.PartitionKey)
	require.Equal(t, HashKey("a").String(), got.ExplicitHashKey)
}

func TestAggregateRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 300)
	cases := []struct {
		name string
		recs []Record
	}{
		{"one", []Record{{PartitionKey: "k", Data: []byte("v")}}},
		{"repeated keys share the table", []Record{
			{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")}, {PartitionKey: "a", Data: []byte("3")},
		}},
		{"explicit hash keys", []Record{
			{PartitionKey: "a", ExplicitHashKey: "1", Data: []byte("1")}, {PartitionKey: "b", Data: []byte("2")},
			{PartitionKey: "c", ExplicitHashKey: "340282366920938463463374607431768211455", Data: []byte("3")},
			{PartitionKey: "d", ExplicitHashKey: "1", Data: []byte("4")},
		}},
		{"empty and binary data", []Record{
			{PartitionKey: "e", Data: []byte{}}, {PartitionKey: "f", Data: []byte{0, 0xF3, 0x89, 0xff}}, {PartitionKey: "g", Data: big},
		}},
		{"unicode keys", []Record{{PartitionKey: "Ωμέγα", Data: []byte("ü")}, {PartitionKey: "日本", Data: []byte("x")}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			agg, err := Aggregate(tc.recs)
			require.NoError(t, err)
			var a Aggregator
			for _, r := range tc.recs {
				a.Add(r)
			}
			require.Len(t, agg.Data, aggOverhead+a.size, "size accounting")
			got, ok, err := Deaggregate(agg.Data)
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, normalize(tc.recs), got)
		})
	}
}

func normalize(rs []Record) []Record {
	out := make([]Record, len(rs))
	for i, r := range rs {
		if r.Data == nil {
			r.Data = []byte{}
		}
		out[i] = r
	}
	return out
}

func TestDeaggregateNotAggregated(t *testing.T) {
	agg, err := Aggregate([]Record{{PartitionKey: "a", Data: []byte("x")}, {PartitionKey: "b", Data: []byte("y")}})
	require.NoError(t, err)
	corrupt := bytes.Clone(agg.Data)
	corrupt[len(corrupt)-1] ^= 1
	for name, data := range map[string][]byte{
		"plain json":   []byte(`{"a":1}`),
		"empty":        nil,
		"magic only":   {0xF3, 0x89, 0x9A, 0xC2},
		"bad checksum": corrupt,
	} {
		t.Run(name, func(t *testing.T) {
			recs, ok, err := Deaggregate(data)
			require.NoError(t, err)
			require.False(t, ok)
			require.Nil(t, recs)
		})
	}
}

func TestDeaggregateMalformed(t *testing.T) {
	frame := func(msg []byte) []byte {
		sum := md5.Sum(msg)
		return append(append(append([]byte{}, aggMagic...), msg...), sum[:]...)
	}
	for name, msg := range map[string][]byte{
		"index out of table": {0x0a, 0x01, 'a', 0x1a, 0x05, 0x08, 0x01, 0x1a, 0x01, 'x'},
		"missing data":       {0x0a, 0x01, 'a', 0x1a, 0x02, 0x08, 0x00},
		"missing key index":  {0x0a, 0x01, 'a', 0x1a, 0x03, 0x1a, 0x01, 'x'},
		"truncated":          {0x0a, 0x05, 'a'},
	} {
		t.Run(name, func(t *testing.T) {
			_, ok, err := Deaggregate(frame(msg))
			require.True(t, ok)
			require.ErrorIs(t, err, ErrBadAggregate)
		})
	}
}

func FuzzDeaggregate(f *testing.F) {
	for _, recs := range [][]Record{
		{{PartitionKey: "a", Data: []byte("x")}},
		{{PartitionKey: "a", Data: []byte("1")}, {PartitionKey: "b", ExplicitHashKey: "7", Data: []byte("2")}},
	} {
		agg, err := Aggregate(recs)
		require.NoError(f, err)
		f.Add(agg.Data, false)
		f.Add(agg.Data[4:len(agg.Data)-16], true)
	}
	f.Add([]byte(`{"plain":true}`), false)
	f.Fuzz(func(t *testing.T, data []byte, frame bool) {
		if frame {
			// Treat data as the protobuf message so the fuzzer gets past
			// the checksum.
			sum := md5.Sum(data)
			data = append(append(append([]byte{}, aggMagic...), data...), sum[:]...)
		}
		recs, ok, err := Deaggregate(data)
		if !ok {
			if err != nil || recs != nil {
				t.Fatalf("not aggregated but got %v, %v", recs, err)
			}
			return
		}
		if err != nil || len(recs) == 0 {
			return
		}
		again, err := Aggregate(recs)
		if err != nil {
			t.Fatal(err)
		}
		back, ok, err := Deaggregate(again.Data)
		if !ok || err != nil {
			t.Fatalf("re-aggregated records do not decode: %v %v", ok, err)
		}
		if fmt.Sprint(back) != fmt.Sprint(recs) {
			t.Fatalf("round trip changed records:\n%v\n%v", recs, back)
		}
	})
}
