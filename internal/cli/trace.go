package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/report"
)

// defaultTracePorts is a sweep wide enough to catch several failing flows
// of a fault that fails one in sixteen: classifying a flow costs --count
// probes; only the picked ones (--flows) cost TTLs x --hop-probes more.
const defaultTracePorts = "30000-30255"

// traceFlags are the flags of the hop-by-hop phase (trace, and sweep --trace).
type traceFlags struct {
	maxTTL    int
	hopProbes int
	patience  time.Duration
	flows     int
	aliases   aliasTestsFlag
}

// aliasTestsFlag is --alias-test: auto (or true, or the flag alone),
// always, or never (or false).
type aliasTestsFlag struct{ when core.AliasTests }

var aliasTestsNames = map[string]core.AliasTests{
	"auto": core.AliasTestsUndecided, "true": core.AliasTestsUndecided,
	"always": core.AliasTestsAlways, "never": core.AliasTestsNever, "false": core.AliasTestsNever,
}

var _ pflag.Value = (*aliasTestsFlag)(nil)

func (a *aliasTestsFlag) Set(v string) error {
	w, ok := aliasTestsNames[v]
	if !ok {
		return fmt.Errorf("want auto, always or never, got %q", v)
	}
	a.when = w
	return nil
}

func (a *aliasTestsFlag) String() string {
	return [...]string{"never", "auto", "always"}[a.when]
}

func (a *aliasTestsFlag) Type() string { return "when" }

// maxTracedFlows bounds --flows (0, every flow, is bounded by --max-ports).
const maxTracedFlows = 1024

// maxPatience bounds --patience: rate-limited hops are worth a few
// minutes at most.
const maxPatience = 5 * time.Minute

func (f *traceFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&f.maxTTL, "max-ttl", 16, "largest TTL to probe (the trace stops early at the target's distance)")
	fl.IntVar(&f.hopProbes, "hop-probes", 2, "TTL-limited probes per flow and TTL")
	fl.DurationVar(&f.patience, "patience", 10*time.Second,
		"how long to probe again, a round a second, the silent hops of routers that rate-limit their ICMP errors (Linux: a burst of 6, then one a second): after the first pass, for a second look's flows, and once more while the diagnosis is unknown; with --responder the return paths' too (up to 10s); 0: never")
	f.aliases.when = core.AliasTestsUndecided
	fl.Var(&f.aliases, "alias-test",
		"ask the routers which of their addresses are one router's: by an ICMP echo request to each carrying a prespecified timestamp option (IPv4, at most 512), then by draining the ICMP error budget of the router answering at one address and watching another go silent (rate-limiting routers, at most 12 rounds of about 2.5s); auto: where the diagnosis cannot decide, each while it still cannot; always; never")
	fl.Lookup("alias-test").NoOptDefVal = "auto"
	fl.IntVar(&f.flows, "flows", core.DefaultTracedFlows,
		"flows traced hop by hop once every one is classified end to end: every failing one up to N, a quarter as many flaky, and healthy ones for contrast up to 2N+N/4 in all, then up to N more through the router a forward verdict rests on (a second look); 0: every flow")
}

func (f *traceFlags) config() (core.TraceOptions, error) {
	switch {
	case f.maxTTL < 1 || f.maxTTL > 64:
		return core.TraceOptions{}, usageError("--max-ttl must be between 1 and 64, got %d", f.maxTTL)
	case f.hopProbes < 1 || f.hopProbes > 10:
		return core.TraceOptions{}, usageError("--hop-probes must be between 1 and 10, got %d", f.hopProbes)
	case f.patience < 0 || f.patience > maxPatience:
		return core.TraceOptions{}, usageError("--patience must be between 0 and %s, got %s", maxPatience, f.patience)
	case f.flows < 0 || f.flows > maxTracedFlows:
		return core.TraceOptions{}, usageError("--flows must be between 0 and %d, got %d", maxTracedFlows, f.flows)
	}
	return core.TraceOptions{MaxTTL: f.maxTTL, HopProbes: f.hopProbes, Patience: f.patience, Flows: f.flows, AliasTest: f.aliases.when}, nil
}

func newTraceCommand(s *Streams) *cobra.Command {
	var (
		pf     probeFlags
		tf     traceFlags
		te     twoEndedFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "trace HOST[:PORT]",
		Short: "Trace each source port's path hop by hop and say where flows die",
		Long: `Classify every listed flow end to end, then trace the failing ones, some
healthy ones for contrast and some flaky ones (--flows) with TTL-limited TCP
SYNs that keep each five-tuple fixed (Paris-style). Flows are grouped
by forward path, and the diagnosis says whether the fault is on the forward
path (naming the hop or link) or on the return path. When a forward verdict,
or a close forward rival, rests on the few flows traced through one router,
a second look probes the untraced flows at that hop and traces up to --flows
more of those that cross it. Needs raw sockets.

Exit codes: 0 no flow fails, 1 some flows fail, 2 bad input, 3 cannot probe,
4 every flow fails, 130 interrupted.`,
		Example: `  ecmpscan trace 198.18.2.2:3306 --sport 30000-30255
  ecmpscan trace db.example.net -p 3306 --sport 30003,30007,30011 --format dot | dot -Tsvg > paths.svg`,
		Args: oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := pf.config(args[0], s)
			if err != nil {
				return err
			}
			tc, err := tf.config()
			if err != nil {
				return err
			}
			f, err := report.ParseTraceFormat(format)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			pr := cfg.probing
			if err := cfg.checkProbes(len(pr.Ports)*pr.Count + core.HopProbes(tc, len(pr.Ports))); err != nil {
				return err
			}
			rc, err := te.client()
			if err != nil {
				return err
			}
			env := systemEnv(s)
			if rc != nil {
				env.Responder = rc
			}
			job := core.TraceConfig{Target: cfg.target, Probing: pr, TraceOptions: tc}
			return runTrace(cmd.Context(), job, f, cfg.render, s, env)
		},
	}
	fl := cmd.Flags()
	pf.register(fl, defaultTracePorts)
	tf.register(fl)
	te.register(fl)
	fl.StringVar(&format, "format", "table", "output: table, json or dot (Graphviz)")
	return cmd
}

// runTrace runs the trace in the core and renders it.
func runTrace(ctx context.Context, job core.TraceConfig, format report.Format, opt report.Options, s *Streams, env core.Env) error {
	progress := newProgress(s, opt.Quiet || format != report.FormatTable)
	env.Progress = progress.update
	tr, err := core.Trace(ctx, job, env)
	progress.done()
	if err != nil {
		return err
	}
	if err := report.RenderTrace(s.Out, format, tr, opt); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if tr.Interrupted {
		return resultCode(ExitInterrupted)
	}
	if code := tr.ExitCode(); code != 0 {
		return resultCode(code)
	}
	return nil
}
