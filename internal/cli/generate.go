package cli

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/runnel-dev/runnel/internal/clickstream"
	"github.com/runnel-dev/runnel/internal/metrics"
	"github.com/runnel-dev/runnel/internal/producer"
)

// generateFallbackListen is where the control API listens when the
// default address is taken: any free local port.
const generateFallbackListen = "127.0.0.1:0"

// generateCloseTimeout bounds how long a generator waits on shutdown for
// buffered events to be delivered.
const generateCloseTimeout = 30 * time.Second

// controlCommand is the curl argument that calls action on the control
// API at base. A generated token is printed; a given one is not, so the
// command names where it came from instead.
func controlCommand(base, action, token string, generated, fromFlag bool) string {
	switch {
	case generated:
		return "'" + base + "/" + action + "?token=" + url.QueryEscape(token) + "'"
	case fromFlag:
		return "'" + base + "/" + action + "?token=<your --token>'"
	default:
		return `"` + base + "/" + action + `?token=$RUNNEL_CLICKSTREAM_TOKEN"`
	}
}

func newGenerateCommand(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Generate synthetic events into a stream",
	}
	cmd.AddCommand(newGenerateClickstreamCommand(e))
	return cmd
}

// clickstreamEnv maps generate clickstream flags to environment variables.
var clickstreamEnv = map[string]string{
	"token": "RUNNEL_CLICKSTREAM_TOKEN",
}

func newGenerateClickstreamCommand(e *env) *cobra.Command {
	var (
		cataloguePath  string
		printCatalogue bool
		token          string
		listen         string
		rate           float64
		sessions       int
		stream         string
		to             string
		seed           uint64
		start          bool
		format         string
	)
	cmd := &cobra.Command{
		Use:   "clickstream",
		Short: "Run a web-store clickstream generator controlled over HTTP",
		Long: `Simulate customers browsing a web store and put their click events into a
stream (or print them). Sessions land on the home page, browse product groups
and products, see campaign banners, add to cart and check out, with the
weights and probabilities of a catalogue: the built-in one (print it with
--print-catalogue) or --catalogue FILE.

With --format json (the default) each event is one JSON record: timestamp
(RFC 3339, milliseconds), eventId, eventType (pageview, impression, click,
add_to_cart, checkout), sessionId, userId, seq, page, section, element,
productGroup, product, campaignId on impressions and banner clicks, price
and cart figures where they apply. The partition key is the event id, a
random UUID.

With --format url each event is a click on a product group's list or on
one of its products, as the URL the store was asked for:
{"url": "https://store.example.com/api/group/2/product/2034?userid=77"}.
The catalogue's urls section holds the templates and the share of group
clicks, each product group its id and productIds range; groups come up by
weight, ids near the middle of their range more often than at its ends.
The partition key is a random UUID.

The generator starts stopped and is controlled over HTTP on --listen:

  GET /info                 what this is and its configuration, as JSON
  GET /status?token=TOKEN   counters, as JSON
  GET /start?token=TOKEN    start generating
  GET /stop?token=TOKEN     stop generating

The token is --token, else $RUNNEL_CLICKSTREAM_TOKEN, else a random one
printed at start. --rate paces all sessions together; --seed repeats a
simulation. SIGINT or SIGTERM stop generating, deliver what is buffered and
print a summary; the exit code is 1 if any event could not be delivered.`,
		Args: exactArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printCatalogue {
				_, err := e.stdout.Write(clickstream.DefaultCatalogueYAML())
				return err
			}
			if err := applyEnv(cmd.Flags(), e.getenv, clickstreamEnv); err != nil {
				return err
			}
			if to != "stream" && to != "stdout" {
				return usagef("--to %q: want stream or stdout", to)
			}
			if to == "stream" && stream == "" {
				return usagef("--stream is required with --to stream")
			}
			if !(rate >= 0) {
				return usagef("--rate %v: must be 0 (unlimited) or more events per second", rate)
			}
			if format != clickstream.FormatJSON && format != clickstream.FormatURL {
				return usagef("--format %q: want %s or %s", format, clickstream.FormatJSON, clickstream.FormatURL)
			}
			if sessions < 1 || sessions > clickstream.MaxSessions {
				return usagef("--sessions %d: must be from 1 to %d", sessions, clickstream.MaxSessions)
			}
			cat := clickstream.DefaultCatalogue()
			if cataloguePath != "" {
				var err error
				if cat, err = clickstream.LoadCatalogue(cataloguePath); err != nil {
					return err
				}
			}
			if format == clickstream.FormatURL {
				if err := cat.CheckURLFormat(); err != nil {
					return err
				}
			}
			if !cmd.Flags().Changed("seed") {
				seed = randomSeed()
			}
			generated := token == ""
			if generated {
				token = rand.Text()
			}
			ctx := cmd.Context()

			var (
				w      producer.Writer
				target string
			)
			switch to {
			case "stdout":
				w, target = producer.NewConsole(e.stdout), "standard output (JSON lines)"
			case "stream":
				client, err := e.client(ctx)
				if err != nil {
					return err
				}
				endpoint := aws.ToString(client.Options().BaseEndpoint)
				if endpoint == "" {
					endpoint = "AWS Kinesis in " + client.Options().Region
				}
				if err := requireStreamExists(ctx, client, stream); err != nil {
					return err
				}
				p, err := producer.New(client, producer.Config{Stream: stream, Endpoint: endpoint, Logger: e.logger})
				if err != nil {
					return err
				}
				w, target = p, fmt.Sprintf("stream %q at %s", stream, endpoint)
			}

			// The generator's own /metrics: its figures, and the Go
			// runtime's and the process's, as the server serves them.
			reg := metrics.NewRegistry()
			gm := metrics.NewGenerator(reg)
			svc, err := clickstream.New(clickstream.Config{
				Catalogue: cat, Writer: w, Token: token, Rate: rate, Sessions: sessions,
				Seed: seed, Format: format, Target: target, Logger: e.logger,
				Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
			})
			if err != nil {
				_, _ = w.Close(ctx)
				return err
			}
			gm.SetSource(svc, stream)
			var lc net.ListenConfig
			ln, err := lc.Listen(ctx, "tcp", listen)
			if err != nil && !cmd.Flags().Changed("listen") {
				// The default port is taken, by another generator
				// perhaps: any free port does.
				ln, err = lc.Listen(ctx, "tcp", generateFallbackListen)
			}
			if err != nil {
				_, _ = w.Close(ctx)
				return fmt.Errorf("listening for the control API on %s: %w (--listen 127.0.0.1:0 picks a free port)", listen, err)
			}
			ctl := "http://" + ln.Addr().String()
			fmt.Fprintf(e.stderr, "runnel: clickstream generator on %s, writing to %s (seed %d)\n", ctl, target, seed)
			if generated {
				fmt.Fprintf(e.stderr, "runnel: token: %s\n", token)
			}
			if start {
				svc.Start()
				fmt.Fprintf(e.stderr, "runnel: generating; stop with: curl %s\n", controlCommand(ctl, "stop", token, generated, cmd.Flags().Changed("token")))
			} else {
				fmt.Fprintf(e.stderr, "runnel: stopped; start with: curl %s\n", controlCommand(ctl, "start", token, generated, cmd.Flags().Changed("token")))
			}

			runErr := svc.Run(ctx, ln)
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), generateCloseTimeout)
			defer cancel()
			_, closeErr := w.Close(cctx)
			st := svc.Status() // after Close, so it holds the final accounting
			if format == clickstream.FormatURL {
				fmt.Fprintf(e.stderr, "runnel: generated %d url events; delivered %d, failed %d\n", st.EventsSent, st.EventsDelivered, st.Failures)
			} else {
				fmt.Fprintf(e.stderr, "runnel: generated %d events in %d sessions (%d checkouts); delivered %d, failed %d\n",
					st.EventsSent, st.SessionsStarted, st.Checkouts, st.EventsDelivered, st.Failures)
			}
			if err := errors.Join(runErr, closeErr); err != nil {
				return err
			}
			if st.Failures > 0 {
				return fmt.Errorf("%d events could not be delivered (last error: %s)", st.Failures, st.LastError)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cataloguePath, "catalogue", "", "YAML catalogue of product groups, products, pages and probabilities (default: built in)")
	f.BoolVar(&printCatalogue, "print-catalogue", false, "print the built-in catalogue, a starting point for --catalogue, and exit")
	f.StringVar(&token, "token", "", "token the control API requires (default: random, printed at start) [$RUNNEL_CLICKSTREAM_TOKEN]")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address of the control API; port 0 picks a free port (default 127.0.0.1:8080, or a free port when that is taken)")
	f.Float64Var(&rate, "rate", 100, "events per second, all sessions together; 0 means as fast as the destination accepts")
	f.IntVar(&sessions, "sessions", 50, "concurrent simulated sessions")
	f.StringVar(&stream, "stream", "clickstream", "stream to put events into")
	f.StringVar(&to, "to", "stream", "destination: stream, or stdout for JSON lines")
	f.Uint64Var(&seed, "seed", 0, "seed of the simulation, to repeat one (default: random, printed at start)")
	f.BoolVar(&start, "start", false, "start generating at once instead of waiting for /start")
	f.StringVar(&format, "format", clickstream.FormatJSON, "events: json (session steps) or url (clicks as {\"url\": URL} from the catalogue's urls templates)")
	return cmd
}

// requireStreamExists fails early, with advice, when the stream does not exist.
func requireStreamExists(ctx context.Context, client *kinesis.Client, name string) error {
	_, err := client.DescribeStreamSummary(ctx, &kinesis.DescribeStreamSummaryInput{StreamName: aws.String(name)})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		return fmt.Errorf("stream %q does not exist; create it with: runnel stream create %s", name, name)
	}
	return err
}

func randomSeed() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read does not fail
	return binary.LittleEndian.Uint64(b[:]) >> 1
}
