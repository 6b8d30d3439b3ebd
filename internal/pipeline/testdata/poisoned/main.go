// Command poisoned is a command handler for tests that misbehaves on
// poison records: a record whose data is {"n":N,"poison":"crash"} makes it
// exit, "garbage" makes it answer a line that is not JSON, "hang" makes
// it never answer. A batch without poison is answered {} and its records
// are appended, one JSON line each, to $HANDLED_LOG.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

type event struct {
	Records []struct {
		EventID string `json:"eventID"`
		Kinesis struct {
			PartitionKey   string `json:"partitionKey"`
			SequenceNumber string `json:"sequenceNumber"`
			Data           []byte `json:"data"`
		} `json:"kinesis"`
	} `json:"Records"`
}

type handled struct {
	ShardID        string         `json:"shardId"`
	SequenceNumber string         `json:"sequenceNumber"`
	PartitionKey   string         `json:"partitionKey"`
	Data           map[string]any `json:"data"`
}

func main() {
	log, err := os.OpenFile(os.Getenv("HANDLED_LOG"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		panic(err)
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			panic(err)
		}
		var out []byte
		for _, r := range ev.Records {
			var data map[string]any
			if err := json.Unmarshal(r.Kinesis.Data, &data); err != nil {
				panic(err)
			}
			switch data["poison"] {
			case "crash":
				os.Exit(3)
			case "garbage":
				fmt.Println("this is not a response")
				continue
			case "hang":
				time.Sleep(time.Hour)
			}
			shard := r.EventID[:len(r.EventID)-len(r.Kinesis.SequenceNumber)-1]
			b, _ := json.Marshal(handled{shard, r.Kinesis.SequenceNumber, r.Kinesis.PartitionKey, data})
			out = append(append(out, b...), '\n')
		}
		if _, err := log.Write(out); err != nil {
			panic(err)
		}
		fmt.Println("{}")
	}
}
