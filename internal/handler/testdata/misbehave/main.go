// Command misbehave is a command handler for tests. The first record of
// each event carries {"action": ...}: ok, fail, crash, hang, garbage, error,
// stderr, noise (an extra stdout line before the response) or wait (block
// until the file $GATE exists). At start it appends its pid to $PID_LOG.
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
		Kinesis struct {
			SequenceNumber string `json:"sequenceNumber"`
			Data           []byte `json:"data"`
		} `json:"kinesis"`
	} `json:"Records"`
}

func main() {
	if path := os.Getenv("PID_LOG"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		fmt.Fprintf(f, "%d\n", os.Getpid())
		f.Close()
	}
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		var ev event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			panic(err)
		}
		var cmd struct{ Action string }
		_ = json.Unmarshal(ev.Records[0].Kinesis.Data, &cmd)
		switch cmd.Action {
		case "ok":
			fmt.Println("{}")
		case "fail":
			fmt.Printf(`{"batchItemFailures":[{"itemIdentifier":%q}]}`+"\n", ev.Records[0].Kinesis.SequenceNumber)
		case "unknown-id":
			fmt.Println(`{"batchItemFailures":[{"itemIdentifier":"999"}]}`)
		case "crash":
			os.Exit(3)
		case "hang":
			time.Sleep(time.Hour)
		case "garbage":
			fmt.Println("this is not JSON")
		case "error":
			fmt.Println(`{"errorType":"Boom","errorMessage":"it broke"}`)
		case "stderr":
			fmt.Fprintln(os.Stderr, "hello from stderr")
			fmt.Println("{}")
		case "wait":
			deadline := time.Now().Add(30 * time.Second)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(os.Getenv("GATE")); err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			fmt.Println("{}")
		default:
			fmt.Fprintf(os.Stderr, "unknown action %q\n", cmd.Action)
			os.Exit(2)
		}
	}
}
