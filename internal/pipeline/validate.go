package pipeline

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/runnel-dev/runnel/internal/consumer"
	"github.com/runnel-dev/runnel/internal/handler"
	"github.com/runnel-dev/runnel/internal/options"
	"github.com/runnel-dev/runnel/internal/yamlpos"
)

var validName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Validate reports every problem in c at once: the error joins one *Error
// per problem, each naming the file, line and field. builtins are the
// names a handler of type builtin may use.
func (c *Config) Validate(builtins Builtins) error {
	var errs []error
	add := func(p path, format string, args ...any) {
		line, col := yamlpos.Pos(c.root, p)
		errs = append(errs, &Error{File: c.file, Line: line, Column: col, Field: p.String(), Msg: fmt.Sprintf(format, args...)})
	}
	streams := map[string]bool{}
	for i, s := range c.Streams {
		sp := path{"streams", i}
		checkName(add, sp.With("name"), "stream", s.Name, streams)
		if s.Shards < 1 || s.Shards > 10000 {
			add(sp.With("shards"), "must be between 1 and 10000, got %d", s.Shards)
		}
		if checkDuration(add, sp.With("retention"), s.Retention) {
			if r := s.Retention.D; r < 24*time.Hour || r > 8760*time.Hour || r%time.Hour != 0 {
				add(sp.With("retention"), "must be whole hours from 24h to 8760h, got %v", r)
			}
		}
	}

	if len(c.Pipelines) == 0 {
		add(path{"pipelines"}, "at least one pipeline is required")
	}
	names := map[string]bool{}
	for i := range c.Pipelines {
		p := &c.Pipelines[i]
		pp := path{"pipelines", i}
		checkName(add, pp.With("name"), "pipeline", p.Name, names)
		if p.Source == "" {
			add(pp.With("source"), "is required: the stream to read")
		}
		switch consumer.StartingPosition(p.StartingPosition) {
		case consumer.TrimHorizon, consumer.Latest:
			if p.StartingTimestamp != "" {
				add(pp.With("startingTimestamp"), "is only used with startingPosition AT_TIMESTAMP")
			}
		case consumer.AtTimestamp:
			if p.StartingTimestamp == "" {
				add(pp.With("startingTimestamp"), "is required with startingPosition AT_TIMESTAMP")
			} else if _, err := time.Parse(time.RFC3339, p.StartingTimestamp); err != nil {
				add(pp.With("startingTimestamp"), "want an RFC 3339 time such as 2024-05-01T12:00:00Z, got %q", p.StartingTimestamp)
			}
		default:
			add(pp.With("startingPosition"), "must be TRIM_HORIZON, LATEST or AT_TIMESTAMP, got %q", p.StartingPosition)
		}
		if p.FanOut != "" && !validName.MatchString(p.FanOut) {
			add(pp.With("fanOut"), "%q: a stream consumer name is 1–128 letters, digits, '.', '_' or '-'", p.FanOut)
		}
		if p.BatchSize < 1 || p.BatchSize > consumer.MaxBatchSize {
			add(pp.With("batchSize"), "must be between 1 and %d, got %d", consumer.MaxBatchSize, p.BatchSize)
		}
		if checkDuration(add, pp.With("batchingWindow"), p.BatchingWindow) {
			if w := p.BatchingWindow.D; w < 0 || w > consumer.MaxBatchingWindow {
				add(pp.With("batchingWindow"), "must be between 0s and %v, got %v", consumer.MaxBatchingWindow, w)
			}
		}
		if r := *p.MaxRetries; r < -1 || r > consumer.MaxRetryAttempts {
			add(pp.With("maxRetries"), "must be between 0 and %d, or -1 for until the records expire, got %d", consumer.MaxRetryAttempts, r)
		}
		if checkDuration(add, pp.With("maxRecordAge"), p.MaxRecordAge) {
			if a := p.MaxRecordAge.D; a > 0 && (a < consumer.MinRecordAge || a > consumer.MaxRecordAge) {
				add(pp.With("maxRecordAge"), "must be between %v and %v, or -1 for no limit, got %v", consumer.MinRecordAge, consumer.MaxRecordAge, a)
			}
		}
		if n := p.Parallelization; n < 1 || n > consumer.MaxParallelizationFactor {
			add(pp.With("parallelization"), "must be between 1 and %d, got %d", consumer.MaxParallelizationFactor, n)
		}
		if checkDuration(add, pp.With("tumblingWindow"), p.TumblingWindow) {
			switch w := p.TumblingWindow.D; {
			case w < 0 || w > consumer.MaxTumblingWindow:
				add(pp.With("tumblingWindow"), "must be between 0s and %v, got %v", consumer.MaxTumblingWindow, w)
			case w > 0 && p.Parallelization > 1:
				add(pp.With("tumblingWindow"), "requires parallelization 1, got %d", p.Parallelization)
			}
		}
		if checkDuration(add, pp.With("timeout"), p.Timeout) {
			if t := p.Timeout.D; t < time.Second || t > 900*time.Second {
				add(pp.With("timeout"), "must be between 1s and 900s, got %v", t)
			}
		}
		if d := p.OnFailure; d != nil {
			dp := pp.With("onFailure")
			switch {
			case d.Stream == "" && d.File == "":
				add(dp, "set stream: NAME or file: PATH")
			case d.Stream != "" && d.File != "":
				add(dp, "set one of stream and file, not both")
			case d.Stream != "" && d.Stream == p.Source:
				add(dp.With("stream"), "must not be the source stream %q: failures would be consumed again", p.Source)
			}
		}
		if l := p.Leases; l != nil && l.DynamoDBTable == "" {
			add(pp.With("leases"), "set dynamodbTable: NAME (the lease table)")
		}
		errs = append(errs, c.validateHandler(add, pp.With("handler"), p, builtins)...)
	}
	return errors.Join(errs...)
}

// checkName reports a missing, malformed or repeated name of a kind
// (stream, pipeline); seen holds the names declared so far.
func checkName(add func(path, string, ...any), p path, kind, name string, seen map[string]bool) {
	switch {
	case name == "":
		add(p, "is required")
	case !validName.MatchString(name):
		add(p, "%q: a %s name is 1–128 letters, digits, '.', '_' or '-'", name, kind)
	case seen[name]:
		add(p, "%s %q is declared twice", kind, name)
	}
	seen[name] = true
}

// checkDuration reports a duration that did not parse; it returns whether
// d is usable.
func checkDuration(add func(path, string, ...any), p path, d Duration) bool {
	if d.bad != "" {
		add(p, "want a duration such as 500ms, 30s or 24h, or a number of seconds; got %s", d.bad)
		return false
	}
	return true
}

// validateHandler reports the handler's problems through add, and
// returns those of a built-in processor's options.
func (c *Config) validateHandler(add func(path, string, ...any), hp path, p *Pipeline, builtins Builtins) []error {
	h := &p.Handler
	set := map[string]bool{
		"command": len(h.Command) > 0, "env": h.Env != nil, "dir": h.Dir != "", "processes": h.Processes != 0,
		"runtime": h.Runtime != "", "handler": h.Function != "",
		"url": h.URL != "", "headers": h.Headers != nil,
		"name": h.Name != "", "options": h.Options != nil,
	}
	own := map[string][]string{
		TypeCommand: {"command", "env", "dir", "processes"},
		TypeLambda:  {"runtime", "handler", "env", "dir", "processes"},
		TypeHTTP:    {"url", "headers"},
		TypeBuiltin: {"name", "options"},
	}
	fields, ok := own[h.Type]
	if !ok {
		if h.Type == "" {
			add(hp.With("type"), "is required: command, lambda, http or builtin")
		} else {
			add(hp.With("type"), "must be command, lambda, http or builtin, got %q", h.Type)
		}
		return nil
	}
	for _, f := range []string{"command", "runtime", "handler", "env", "dir", "processes", "url", "headers", "name", "options"} {
		if set[f] && !slices.Contains(fields, f) {
			add(hp.With(f), "is not used by handler type %s", h.Type)
		}
	}
	switch h.Type {
	case TypeCommand, TypeLambda:
		if h.Type == TypeCommand && len(h.Command) == 0 {
			add(hp.With("command"), "is required: the program and its arguments, e.g. [python3, handler.py]")
		}
		if h.Type == TypeLambda {
			switch {
			case h.Runtime == "":
				add(hp.With("runtime"), "is required: nodejs or python")
			case handler.CheckRuntime(h.Runtime) != nil:
				add(hp.With("runtime"), "must be nodejs or python (or a versioned name such as nodejs20.x or python3.12), got %q", h.Runtime)
			}
			switch {
			case h.Function == "":
				add(hp.With("handler"), "is required: MODULE.FUNCTION as Lambda takes it, e.g. index.handler")
			case handler.CheckFunction(h.Function) != nil:
				add(hp.With("handler"), "want MODULE.FUNCTION as Lambda takes it, e.g. index.handler or handler.handler; got %q", h.Function)
			}
		}
		if h.Processes < 1 || h.Processes > 100 {
			add(hp.With("processes"), "must be between 1 and 100, got %d", h.Processes)
		}
		for k := range h.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") {
				add(hp.With("env"), "invalid variable name %q", k)
			}
		}
	case TypeHTTP:
		u, err := url.Parse(h.URL)
		if h.URL == "" {
			add(hp.With("url"), "is required")
		} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(hp.With("url"), "want an http:// or https:// URL, got %q", h.URL)
		}
	case TypeBuiltin:
		if h.Name == "" {
			add(hp.With("name"), "is required; built-in processors: %s", builtins.names())
		} else if b, ok := builtins[h.Name]; !ok {
			add(hp.With("name"), "unknown built-in processor %q; built-in processors: %s", h.Name, builtins.names())
		} else {
			return c.checkOptions(hp.With("options"), h, b)
		}
	}
	return nil
}

// checkOptions checks a built-in processor's options against its spec,
// placing each problem at its option in the file.
func (c *Config) checkOptions(op path, h *Handler, b Builtin) []error {
	var err error
	n := yamlpos.Node(c.root, op)
	switch {
	case b.Options == nil && len(h.Options) > 0:
		err = errNoOptions
	case b.Options == nil:
	case n != nil:
		err = b.Options.Check(n)
	default: // a configuration built in Go
		err = b.Check(h.Options)
	}
	var errs []error
	for _, e := range options.Unjoin(err) {
		line, col := yamlpos.Pos(c.root, op)
		pe := &Error{File: c.file, Line: line, Column: col, Field: op.String(), Msg: h.Name + ": " + e.Error()}
		var oe *options.Error
		if errors.As(e, &oe) && oe.Path != "" {
			pe.Field += "." + oe.Path
			pe.Msg = oe.Msg
			if oe.Line > 0 {
				pe.Line, pe.Column = oe.Line, oe.Column
			}
		}
		errs = append(errs, pe)
	}
	return errs
}
