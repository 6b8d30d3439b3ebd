// Package bench drives any Kinesis endpoint with PutRecords and GetRecords
// and reports throughput and latency.
package bench

import "github.com/spf13/cobra"

// NewCommand returns the `runnel bench` command.
func NewCommand() *cobra.Command {
	return &cobra.Command{Use: "bench", Short: "Measure PutRecords and GetRecords throughput of a Kinesis endpoint"}
}
