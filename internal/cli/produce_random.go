package cli

import (
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/producer/source"
)

func newProduceRandomCommand(e *env) *cobra.Command {
	var (
		opts       produceOpts
		count      int64
		countries  []string
		eventTypes []string
		key        string
	)
	cmd := &cobra.Command{
		Use:   "random [STREAM]",
		Short: "Send random events",
		Long: `Send random events {"timestamp","country","eventType","value","id"}: the
timestamp is now (RFC 3339, UTC), country and eventType are picked from
--countries and --event-types, value is 0.01 to 1000.00 and id a random UUID.
The partition key is the --key field (default id). Without --count it runs
until interrupted.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes an optional STREAM; got %d arguments", cmd.CommandPath(), len(args))
			}
			return opts.streamArg(args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if count < 0 {
				return usagef("--count %d: must not be negative", count)
			}
			src, err := source.NewRandom(source.RandomConfig{Count: count, Countries: countries, EventTypes: eventTypes, Key: key})
			if err != nil {
				return usagef("%v", err)
			}
			r := &produceRun{e: e, opts: &opts}
			return r.run(cmd.Context(), src, nil)
		},
	}
	opts.addFlags(cmd)
	f := cmd.Flags()
	f.Int64Var(&count, "count", 0, "number of events (0: until interrupted)")
	f.StringSliceVar(&countries, "countries", source.DefaultCountries, "countries to pick from")
	f.StringSliceVar(&eventTypes, "event-types", source.DefaultEventTypes, "event types to pick from")
	f.StringVar(&key, "key", "id", "field used as partition key: id, country or eventType")
	return cmd
}
