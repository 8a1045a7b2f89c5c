package cli

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// defaultTracePorts is a small sweep: tracing costs TTLs x probes per flow.
const defaultTracePorts = "30000-30015"

// traceFlags are the flags of the hop-by-hop phase (trace, and sweep --trace).
type traceFlags struct {
	maxTTL    int
	hopProbes int
}

func (f *traceFlags) register(fl *pflag.FlagSet) {
	fl.IntVar(&f.maxTTL, "max-ttl", 16, "largest TTL to probe (the trace stops early at the target's distance)")
	fl.IntVar(&f.hopProbes, "hop-probes", 2, "TTL-limited probes per flow and TTL")
}

type traceConfig struct {
	maxTTL    int
	hopProbes int
}

func (f *traceFlags) config() (traceConfig, error) {
	switch {
	case f.maxTTL < 1 || f.maxTTL > 64:
		return traceConfig{}, usageError("--max-ttl must be between 1 and 64, got %d", f.maxTTL)
	case f.hopProbes < 1 || f.hopProbes > 10:
		return traceConfig{}, usageError("--hop-probes must be between 1 and 10, got %d", f.hopProbes)
	}
	return traceConfig{maxTTL: f.maxTTL, hopProbes: f.hopProbes}, nil
}

func newTraceCommand(s *Streams) *cobra.Command {
	var (
		pf     probeFlags
		tf     traceFlags
		format string
	)
	cmd := &cobra.Command{
		Use:   "trace HOST[:PORT]",
		Short: "Trace each source port's path hop by hop and say where flows die",
		Long: `Trace every listed flow with TTL-limited TCP SYNs that keep its five-tuple
fixed (Paris-style), next to the flow's end-to-end result. Flows are grouped
by forward path, and the diagnosis says whether the fault is on the forward
path (naming the hop or link) or on the return path. Needs raw sockets.

Exit codes: 0 no flow fails, 1 some flows fail, 2 bad input, 3 cannot probe,
4 every flow fails, 130 interrupted.`,
		Example: `  ecmpscan trace 198.18.2.2:3306 --sport 30000-30015
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
			return runTrace(cmd.Context(), cfg, tc, f, s)
		},
	}
	fl := cmd.Flags()
	pf.register(fl, defaultTracePorts)
	tf.register(fl)
	fl.StringVar(&format, "format", "table", "output: table, json or dot (Graphviz)")
	return cmd
}

func runTrace(ctx context.Context, cfg probeConfig, tc traceConfig, format report.Format, s *Streams) error {
	target, src, err := resolveTarget(ctx, cfg.host, cfg.port, cfg.family, cfg.src)
	if err != nil {
		return err
	}
	raw, err := openRawForTrace(src, target)
	if err != nil {
		return err
	}
	defer raw.Close()
	progress := newProgress(s, cfg.render.Quiet || format != report.FormatTable)
	tr, err := tracePhases(ctx, raw, cfg, tc, src, target, cfg.sports, nil, progress)
	if err != nil {
		return err
	}
	if err := report.RenderTrace(s.Out, format, tr, cfg.render); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return traceExit(tr)
}

func openRawForTrace(src netip.Addr, target netip.AddrPort) (*probe.RawProber, error) {
	// The ICMP socket reads the time-exceeded answers.
	raw, err := probe.OpenRaw(src, target, true)
	switch {
	case errors.Is(err, probe.ErrPermission):
		return nil, cannotProbe(fmt.Errorf("tracing needs raw sockets: %w; run as root or grant `sudo setcap cap_net_raw+ep $(command -v ecmpscan)`", probe.ErrPermission))
	case err != nil:
		return nil, cannotProbe(fmt.Errorf("open raw sockets: %w", err))
	}
	return raw, nil
}

// tracePhases classifies each flow end to end (unless e2e results are given,
// as after a sweep), then probes every flow at every TTL up to just past the
// target's estimated distance, and assembles, buckets and diagnoses it all.
func tracePhases(ctx context.Context, raw *probe.RawProber, cfg probeConfig, tc traceConfig,
	src netip.Addr, target netip.AddrPort, sports []uint16, e2e []probe.Result, progress *progress) (report.Trace, error) {
	started := time.Now()
	rng := rand.New(rand.NewPCG(randomUint64(), randomUint64()))
	tuples := probe.Tuples(src, target, sports)
	run := func(probes []probe.Probe, earlier []probe.Result) ([]probe.Result, bool, error) {
		eng := &probe.Engine{Sender: raw, Receivers: raw.Receivers(), Secret: randomUint64(), OnProgress: progress.update}
		plan := probe.Plan{Probes: probes, Rate: cfg.rate, Timeout: cfg.timeout, Grace: min(cfg.timeout, 500*time.Millisecond)}
		for _, r := range earlier {
			plan.Earlier = append(plan.Earlier, r.Probe)
		}
		results, _, err := eng.Run(ctx, plan)
		progress.done()
		interrupted := errors.Is(err, context.Canceled) || ctx.Err() != nil
		if err != nil && !interrupted {
			return nil, false, cannotProbe(err)
		}
		return results, interrupted, nil
	}
	tr := report.Trace{
		Host: cfg.host, Target: target, Source: src, Mode: "raw", ProbesPerHop: tc.hopProbes,
		Count: cfg.count, Started: started,
	}
	var interrupted bool
	var err error
	if e2e == nil {
		if e2e, interrupted, err = run(probe.Order(tuples, probe.KindTCPSYN, nil, cfg.count, rng), nil); err != nil {
			return tr, err
		}
	}
	tr.MaxTTL = tc.maxTTL
	if d := report.DestinationTTL(e2e); d > 0 {
		// One past the estimate: the return path may be a hop shorter.
		tr.MaxTTL = min(tc.maxTTL, d+1)
	}
	var hops []probe.Result
	if !interrupted {
		// A server left half-open by a probe of the first phase answers
		// the next SYN on the flow with a bare ACK of that probe: known
		// cookies keep it from passing for an answer.
		if hops, interrupted, err = run(probe.TraceOrder(tuples, tr.MaxTTL, tc.hopProbes, rng), e2e); err != nil {
			return tr, err
		}
	}
	tr.Flows = report.TraceFlows(e2e, hops)
	tr.Buckets = report.BucketPaths(tr.Flows)
	tr.Diagnosis = report.Diagnose(tr.Flows)
	tr.Interrupted = interrupted
	tr.Duration = time.Since(started)
	return tr, nil
}

func traceExit(tr report.Trace) error {
	if tr.Interrupted {
		return resultCode(ExitInterrupted)
	}
	fail := 0
	for _, f := range tr.Flows {
		if f.State == hash.StateFail {
			fail++
		}
	}
	switch {
	case fail > 0 && fail == len(tr.Flows):
		return resultCode(ExitTargetDown)
	case fail > 0:
		return resultCode(ExitFault)
	}
	return nil
}

// tracePorts picks the flows to trace after a sweep: every failing port (up
// to 32), some flaky ones, and as many healthy ones for contrast, spread over
// the swept range.
func tracePorts(ports []hash.FlowStats) []uint16 {
	var fail, flaky, ok []uint16
	for _, p := range ports {
		switch p.State() {
		case hash.StateFail:
			fail = append(fail, p.Tuple.SrcPort)
		case hash.StateFlaky:
			flaky = append(flaky, p.Tuple.SrcPort)
		default:
			ok = append(ok, p.Tuple.SrcPort)
		}
	}
	out := spread(fail, 32)
	out = append(out, spread(flaky, 8)...)
	return append(out, spread(ok, min(32, max(8, len(out))))...)
}

// spread picks up to n ports evenly from the list.
func spread(ports []uint16, n int) []uint16 {
	if len(ports) <= n {
		return ports
	}
	out := make([]uint16, n)
	for i := range out {
		out[i] = ports[i*len(ports)/n]
	}
	return out
}
