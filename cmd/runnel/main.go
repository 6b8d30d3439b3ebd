// Command runnel serves the Amazon Kinesis Data Streams API with durable
// local storage and talks to any Kinesis endpoint.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/runnel-dev/runnel/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
