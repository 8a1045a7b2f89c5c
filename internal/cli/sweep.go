package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/report"
)

// defaultSports sits below Linux's default ephemeral range (32768-60999),
// so the sweep does not collide with the host's own connections.
const defaultSports = "30000-30063"

// sweepFlags are the raw flag values of `ecmpscan sweep`.
type sweepFlags struct {
	probeFlags
	mode       string
	icmp       int
	format     string
	trace      bool
	confidence float64
	maxWidth   int
	sportSet   bool // --sport given: a plan keeps the user's ports
	countSet   bool // --count given: a plan probes at least that often
	traceFlags
	twoEndedFlags
}

// sweepConfig is a validated sweep, ready to run.
type sweepConfig struct {
	core      core.SweepConfig
	format    report.Format
	render    report.Options
	responder *responder.Client // nil: one-ended
}

func newSweepCommand(s *Streams) *cobra.Command {
	var f sweepFlags
	cmd := &cobra.Command{
		Use:   "sweep HOST[:PORT]",
		Short: "Probe a target from many source ports and report which ones fail",
		Long: `Sweep source ports toward HOST:PORT with raw TCP SYN probes, each repeated
--count times, plus ICMP echo probes with --icmp distinct identifiers. A port
that never gets an answer while others always do betrays one bad ECMP member.

Exit codes: 0 healthy, 1 some ports fail (ECMP-like fault), 2 bad input,
3 cannot probe, 4 every port fails, 130 interrupted.`,
		Example: `  ecmpscan sweep 198.18.2.2:3306
  ecmpscan sweep db.example.net -p 3306 --sport 40000-40255 -c 5
  ecmpscan sweep '[2001:db8:2::2]:443' --format json`,
		Args: oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			f.sportSet, f.countSet = cmd.Flags().Changed("sport"), cmd.Flags().Changed("count")
			cfg, err := f.config(args[0], s)
			if err != nil {
				return err
			}
			env := systemEnv(s)
			if cfg.responder != nil {
				env.Responder = cfg.responder
			}
			return runSweep(cmd.Context(), cfg, s, env)
		},
	}
	fl := cmd.Flags()
	f.probeFlags.register(fl, defaultSports)
	fl.StringVar(&f.mode, "mode", "auto", "auto, raw (TCP SYN on raw sockets) or connect (unprivileged connect())")
	fl.IntVar(&f.icmp, "icmp", 8, "ICMP echo identifiers to probe, each --count times (0 disables)")
	fl.StringVar(&f.format, "format", "table", "output: table, json, jsonl or csv")
	fl.BoolVar(&f.trace, "trace", false, "then trace the failing ports and some healthy ones hop by hop (raw mode)")
	fl.Float64Var(&f.confidence, "confidence", 0, "plan the sweep: enough ports to hit one bad member of --max-width with this probability (e.g. 0.99), repeats from the measured loss, stop once settled")
	fl.IntVar(&f.maxWidth, "max-width", 16, "with --confidence: the widest ECMP group to plan for")
	f.traceFlags.register(fl)
	f.twoEndedFlags.register(fl)
	return cmd
}

// config validates everything that can be checked without the network, so
// bad input never sends a packet.
func (f *sweepFlags) config(target string, s *Streams) (sweepConfig, error) {
	common, err := f.probeFlags.config(target, s)
	if err != nil {
		return sweepConfig{}, err
	}
	cfg := sweepConfig{render: common.render, core: core.SweepConfig{
		Target: common.target, Probing: common.probing, Mode: core.Mode(f.mode), ICMP: f.icmp,
	}}
	switch {
	case f.icmp < 0 || f.icmp > 1024:
		return cfg, usageError("--icmp must be between 0 and 1024, got %d", f.icmp)
	case f.mode != "auto" && f.mode != "raw" && f.mode != "connect":
		return cfg, usageError("unknown --mode %q (want auto, raw or connect)", f.mode)
	}
	if cfg.format, err = report.ParseFormat(f.format); err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	if f.confidence != 0 {
		if cfg.core.Plan, err = f.makePlan(&cfg.core.Probing, common.maxProbes); err != nil {
			return cfg, err
		}
	}
	if f.trace {
		if cfg.format == report.FormatJSONL || cfg.format == report.FormatCSV {
			return cfg, usageError("--trace prints with --format table or json")
		}
		if f.mode == "connect" {
			return cfg, usageError("--trace needs raw sockets; it does not work with --mode connect")
		}
		tc, err := f.traceFlags.config()
		if err != nil {
			return cfg, err
		}
		cfg.core.Trace = &tc
	}
	if cfg.responder, err = f.twoEndedFlags.client(); err != nil {
		return cfg, err
	}
	return cfg, common.checkProbes(core.SweepProbes(cfg.core))
}

// makePlan sizes a sweep by confidence. Without --sport the ports are the
// planned number from the start of the default range; with it, the user's.
func (f *sweepFlags) makePlan(pr *core.Probing, maxProbes int) (*hash.Plan, error) {
	if !(f.confidence > 0 && f.confidence < 1) || f.maxWidth < 2 || f.maxWidth > 4096 {
		return nil, usageError("--confidence must be between 0 and 1 and --max-width between 2 and 4096 (got %g, %d)", f.confidence, f.maxWidth)
	}
	// Repeats start from the planned count; the measured loss raises them.
	plan, err := hash.MakePlan(f.confidence, f.maxWidth, 0, hash.DefaultAlpha, hash.DefaultMaxRepeats)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if f.countSet {
		plan.Repeats = max(plan.Repeats, pr.Count)
	}
	if !f.sportSet {
		first := int(pr.Ports[0])
		if first+plan.Ports-1 > 65535 || plan.Ports > f.maxPorts {
			return nil, usageError("the plan needs %d source ports: more than fit (see --max-ports)", plan.Ports)
		}
		pr.Ports = pr.Ports[:0]
		for p := first; p < first+plan.Ports; p++ {
			pr.Ports = append(pr.Ports, uint16(p))
		}
	}
	return &plan, nil
}

// runSweep runs the sweep in the core and renders it. Its error carries
// the exit code.
func runSweep(ctx context.Context, cfg sweepConfig, s *Streams, env core.Env) error {
	progress := newProgress(s, cfg.render.Quiet || cfg.format != report.FormatTable)
	env.Progress = progress.update
	sw, err := core.Sweep(ctx, cfg.core, env)
	progress.done()
	if err != nil {
		return err
	}
	if err := report.Render(s.Out, cfg.format, sw, cfg.render); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if sw.Interrupted {
		return resultCode(ExitInterrupted)
	}
	if code := sw.Summary.ExitCode(); code != 0 {
		return resultCode(code)
	}
	return nil
}

// systemEnv is the real world: sockets, resolver, clock, and remarks on
// stderr.
func systemEnv(s *Streams) core.Env {
	return core.Env{
		Probers:  core.System{},
		Resolver: core.SystemResolver{},
		FirstHop: route.Lookup,
		Notice:   func(msg string) { fmt.Fprintf(s.Err, "ecmpscan: %s\n", msg) },
	}
}
