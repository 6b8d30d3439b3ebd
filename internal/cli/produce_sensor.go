package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/producer/source"
)

func newProduceSensorCommand(e *env) *cobra.Command {
	var (
		opts     produceOpts
		names    []string
		interval time.Duration
		count    int64
	)
	cmd := &cobra.Command{
		Use:   "sensor [STREAM]",
		Short: "Send unicorn sensor readings (Wild Rydes)",
		Long: `Send one reading per unicorn (--name, repeatable) every --interval, as in the
Wild Rydes data-processing workshop: {"Name","StatusTime","Latitude",
"Longitude","Distance","HealthPoints","MagicPoints"}. StatusTime is UTC in
"2006-01-02 15:04:05.000" form; each unicorn walks about 30 m/s along a
smoothly turning path from midtown Manhattan; Distance is meters since its
previous reading. The partition key is the unicorn's name.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes an optional STREAM; got %d arguments", cmd.CommandPath(), len(args))
			}
			return opts.streamArg(args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if interval <= 0 {
				return usagef("--interval %s: must be positive", interval)
			}
			if count < 0 {
				return usagef("--count %d: must not be negative", count)
			}
			src, err := source.NewSensor(source.SensorConfig{Names: names, Interval: interval, Count: count})
			if err != nil {
				return usagef("%v", err)
			}
			r := &produceRun{e: e, opts: &opts}
			return r.run(cmd.Context(), src, nil)
		},
	}
	opts.addFlags(cmd)
	f := cmd.Flags()
	f.StringArrayVar(&names, "name", []string{"Shadowfax"}, "unicorn name (repeat for several unicorns)")
	f.DurationVar(&interval, "interval", time.Second, "time between readings of each unicorn")
	f.Int64Var(&count, "count", 0, "number of readings in all (0: until interrupted)")
	return cmd
}
