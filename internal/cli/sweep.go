package cli

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
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
}

// sweepConfig is a validated sweep, ready to run.
type sweepConfig struct {
	probeConfig
	mode   string
	icmp   int
	format report.Format
	trace  *traceConfig // nil without --trace
	plan   *hash.Plan   // nil unless --confidence
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
			return runSweep(cmd.Context(), cfg, s)
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
	return cmd
}

// config validates everything that can be checked without the network, so
// bad input never sends a packet.
func (f *sweepFlags) config(target string, s *Streams) (sweepConfig, error) {
	common, err := f.probeFlags.config(target, s)
	cfg := sweepConfig{probeConfig: common, mode: f.mode, icmp: f.icmp}
	switch {
	case err != nil:
		return cfg, err
	case f.icmp < 0 || f.icmp > 1024:
		return cfg, usageError("--icmp must be between 0 and 1024, got %d", f.icmp)
	case f.mode != "auto" && f.mode != "raw" && f.mode != "connect":
		return cfg, usageError("unknown --mode %q (want auto, raw or connect)", f.mode)
	}
	if cfg.format, err = report.ParseFormat(f.format); err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	if f.confidence != 0 {
		if cfg.plan, err = f.makePlan(&cfg); err != nil {
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
		cfg.trace = &tc
	}
	return cfg, nil
}

// makePlan sizes a sweep by confidence. Without --sport the ports are the
// planned number from the start of the default range; with it, the user's.
func (f *sweepFlags) makePlan(cfg *sweepConfig) (*hash.Plan, error) {
	if !(f.confidence > 0 && f.confidence < 1) || f.maxWidth < 2 || f.maxWidth > 4096 {
		return nil, usageError("--confidence must be between 0 and 1 and --max-width between 2 and 4096 (got %g, %d)", f.confidence, f.maxWidth)
	}
	// Repeats start from the planned count; the measured loss raises them.
	plan, err := hash.MakePlan(f.confidence, f.maxWidth, 0, hash.DefaultAlpha, hash.DefaultMaxRepeats)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if f.countSet {
		plan.Repeats = max(plan.Repeats, cfg.count)
	}
	if !f.sportSet {
		first := int(cfg.sports[0])
		if first+plan.Ports-1 > 65535 || plan.Ports > f.maxPorts {
			return nil, usageError("the plan needs %d source ports: more than fit (see --max-ports)", plan.Ports)
		}
		cfg.sports = cfg.sports[:0]
		for p := first; p < first+plan.Ports; p++ {
			cfg.sports = append(cfg.sports, uint16(p))
		}
	}
	return &plan, nil
}

// runSweep resolves, opens the prober, runs the engine, buckets the results
// and renders the report. Its error carries the exit code.
func runSweep(ctx context.Context, cfg sweepConfig, s *Streams) error {
	target, src, err := resolveTarget(ctx, cfg.host, cfg.port, cfg.family, cfg.src)
	if err != nil {
		return err
	}
	addr := target.Addr()

	rng := rand.New(rand.NewPCG(randomUint64(), randomUint64()))
	var echo []hash.FiveTuple
	if cfg.icmp > 0 {
		echo = probe.EchoTuples(src, addr, uint16(rng.Uint32()), cfg.icmp)
	}
	pr, err := openProber(cfg, src, target, echo, s)
	if err != nil {
		return err
	}
	defer pr.close()
	eng, mode, icmpSkipped := pr.engine, pr.mode, pr.icmpSkipped
	if icmpSkipped != "" {
		echo = nil
	}
	tcpKind := probe.KindTCPSYN
	if mode == "connect" {
		tcpKind = probe.KindConnect
	}
	progress := newProgress(s, cfg.render.Quiet || cfg.format != report.FormatTable)
	eng.OnProgress = progress.update
	tcp := probe.Tuples(src, target, cfg.sports)
	started := time.Now()
	var (
		results     []probe.Result
		stats       probe.Stats
		interrupted bool
		swPlan      *report.SweepPlan
	)
	if cfg.plan == nil {
		results, stats, interrupted, err = runRound(ctx, eng, cfg, probe.Order(tcp, tcpKind, echo, cfg.count, rng), nil)
	} else {
		swPlan, results, stats, interrupted, err = runPlanned(ctx, eng, cfg, tcp, tcpKind, echo, rng)
	}
	progress.done()
	if err != nil {
		return err
	}

	ports, echoIDs := bucketByFlow(results)
	sw := report.Sweep{
		Host: cfg.host, Target: target, Source: src, Mode: mode, Count: cfg.count, Rate: cfg.rate,
		Timeout: cfg.timeout, Started: started, Duration: time.Since(started), Interrupted: interrupted,
		Ports: ports, ICMP: report.ICMP{Skipped: icmpSkipped, IDs: echoIDs},
		Unmatched: stats.Unmatched, Malformed: stats.Malformed, HalfOpen: stats.HalfOpen,
	}
	if cfg.icmp == 0 {
		sw.ICMP.Skipped = "disabled with --icmp 0"
	}
	sw.Plan = swPlan
	hash.Judge(sw.Ports, hash.DefaultAlpha) // the trace picks ports by their judged state
	var pathWidth hash.WidthEstimate
	if cfg.trace != nil && !interrupted {
		if pr.raw == nil {
			fmt.Fprintln(s.Err, "ecmpscan: --trace skipped: tracing needs raw sockets")
		} else {
			sports := tracePorts(sw.Ports)
			tr, err := tracePhases(ctx, pr.raw, cfg.probeConfig, *cfg.trace, src, target, sports, endToEndOf(results, sports), progress)
			if err != nil {
				return err
			}
			sw.Trace = &tr
			interrupted = tr.Interrupted
			pathWidth = report.TraceWidth(tr)
		}
	}
	sw.Summary = report.Summarize(cfg.host, target, sw.Ports, sw.ICMP, pathWidth)
	if err := report.Render(s.Out, cfg.format, sw, cfg.render); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if interrupted {
		return resultCode(ExitInterrupted)
	}
	if code := sw.Summary.ExitCode(); code != 0 {
		return resultCode(code)
	}
	return nil
}

// runRound runs one engine pass over the probes. earlier are the results of
// previous rounds on the same flows, whose late or half-open answers must not
// count for this round.
func runRound(ctx context.Context, eng *probe.Engine, cfg sweepConfig, probes []probe.Probe, earlier []probe.Result) ([]probe.Result, probe.Stats, bool, error) {
	plan := probe.Plan{Probes: probes, Rate: cfg.rate, Timeout: cfg.timeout, Grace: min(cfg.timeout, 500*time.Millisecond)}
	for _, r := range earlier {
		plan.Earlier = append(plan.Earlier, r.Probe)
	}
	eng.Secret = randomUint64() // fresh cookies per round
	results, stats, err := eng.Run(ctx, plan)
	interrupted := errors.Is(err, context.Canceled) || ctx.Err() != nil
	if err != nil && !interrupted {
		return nil, stats, false, cannotProbe(err)
	}
	return results, stats, interrupted, nil
}

// runPlanned probes in rounds until the verdict is settled at the planned
// confidence (hash.Settled): every port at least the planned repeats, and no
// port whose losses background loss could still explain. Repeats follow the
// loss measured so far; rounds stop at hash.DefaultMaxRepeats.
func runPlanned(ctx context.Context, eng *probe.Engine, cfg sweepConfig, tcp []hash.FiveTuple, kind probe.Kind,
	echo []hash.FiveTuple, rng *rand.Rand) (*report.SweepPlan, []probe.Result, probe.Stats, bool, error) {
	plan := &report.SweepPlan{Plan: *cfg.plan}
	var all []probe.Result
	var total probe.Stats
	var ports []hash.FlowStats
	for plan.Rounds < hash.DefaultMaxRepeats {
		round := tcp
		if ports != nil {
			round = unsettledFlows(tcp, ports, plan.Repeats)
		}
		var echoRound []hash.FiveTuple
		if plan.Rounds < plan.Repeats {
			echoRound = echo
		}
		results, stats, interrupted, err := runRound(ctx, eng, cfg, probe.Order(round, kind, echoRound, 1, rng), all)
		if err != nil {
			return nil, nil, total, false, err
		}
		plan.Rounds++
		all = append(all, results...)
		total.Sent += stats.Sent
		total.Unmatched += stats.Unmatched
		total.Malformed += stats.Malformed
		total.HalfOpen += stats.HalfOpen
		if interrupted {
			plan.Stopped = "interrupted"
			return plan, all, total, true, nil
		}
		ports, _ = bucketByFlow(all)
		loss := hash.Judge(ports, hash.DefaultAlpha)
		// The measured loss decides how many lost probes make a port dead.
		plan.Repeats = max(plan.Repeats, hash.RepeatsForLoss(loss, hash.DefaultAlpha, hash.DefaultMaxRepeats))
		if done, why := hash.Settled(ports, plan.Plan, hash.DefaultAlpha); done {
			plan.Stopped = why
			return plan, all, total, false, nil
		}
		plan.Stopped = fmt.Sprintf("stopped after %d rounds (the cap) without settling", plan.Rounds)
	}
	return plan, all, total, false, nil
}

// unsettledFlows are the flows that need another probe: fewer than the
// planned repeats, or every probe lost while the background loss could
// still explain it.
func unsettledFlows(tcp []hash.FiveTuple, ports []hash.FlowStats, repeats int) []hash.FiveTuple {
	need := map[uint16]bool{}
	for _, p := range ports {
		if p.Sent < repeats || (p.Received == 0 && p.State() != hash.StateFail) {
			need[p.Tuple.SrcPort] = true
		}
	}
	var out []hash.FiveTuple
	for _, t := range tcp {
		if need[t.SrcPort] {
			out = append(out, t)
		}
	}
	return out
}

// bucketByFlow aggregates results per source port, TCP and ICMP echo apart.
func bucketByFlow(results []probe.Result) (ports, echo []hash.FlowStats) {
	tcp, icmp := hash.BySourcePort(), hash.BySourcePort()
	for _, r := range results {
		if r.Kind == probe.KindICMPEcho {
			icmp.Add(r.Observation())
		} else {
			tcp.Add(r.Observation())
		}
	}
	return tcp.Buckets(), icmp.Buckets()
}

// prober is what a sweep probes with.
type prober struct {
	engine      *probe.Engine
	mode        string           // raw or connect
	raw         *probe.RawProber // nil in connect mode
	icmpSkipped string           // why ICMP is not probed, if it is not
	closers     []func() error
}

func (p *prober) close() {
	for _, c := range p.closers {
		_ = c()
	}
}

// openProber picks raw or connect mode. In auto mode a missing privilege is
// not an error: it falls back to connect mode and says so on stderr. In
// connect mode ICMP goes over unprivileged ping sockets where the kernel
// allows them; icmpSkipped says why not otherwise.
func openProber(cfg sweepConfig, src netip.Addr, target netip.AddrPort, echo []hash.FiveTuple, s *Streams) (*prober, error) {
	if cfg.mode != "connect" {
		raw, err := probe.OpenRaw(src, target, len(echo) > 0 || cfg.trace != nil)
		switch {
		case err == nil:
			return &prober{engine: &probe.Engine{Sender: raw, Receivers: raw.Receivers()}, mode: "raw", raw: raw, closers: []func() error{raw.Close}}, nil
		case errors.Is(err, probe.ErrPermission) && cfg.mode == "auto":
			fmt.Fprintf(s.Err, "ecmpscan: raw sockets need root or CAP_NET_RAW; using connect mode (for raw SYN probes: sudo setcap cap_net_raw+ep $(command -v ecmpscan))\n")
		case errors.Is(err, probe.ErrPermission):
			return nil, cannotProbe(fmt.Errorf("%w; run as root, grant the capability with `sudo setcap cap_net_raw+ep $(command -v ecmpscan)`, or use --mode connect", probe.ErrPermission))
		default:
			return nil, cannotProbe(fmt.Errorf("open raw sockets: %w", err))
		}
	}
	cp := probe.NewConnectProber(cfg.timeout)
	p := &prober{engine: &probe.Engine{Sender: cp, Receivers: []probe.Receiver{cp}}, mode: "connect", closers: []func() error{cp.Close}}
	if len(echo) == 0 {
		return p, nil
	}
	ping, err := probe.OpenPing(src, echo)
	if err != nil {
		p.icmpSkipped = fmt.Sprintf("connect mode: %v", err)
		return p, nil
	}
	p.engine.Sender = probe.SenderByKind{probe.KindConnect: cp, probe.KindICMPEcho: ping}
	p.engine.Receivers = append(p.engine.Receivers, ping.Receivers()...)
	p.closers = append(p.closers, ping.Close)
	return p, nil
}

// endToEndOf keeps the sweep's TCP results for the given ports.
func endToEndOf(results []probe.Result, sports []uint16) []probe.Result {
	want := make(map[uint16]bool, len(sports))
	for _, sp := range sports {
		want[sp] = true
	}
	var out []probe.Result
	for _, r := range results {
		if r.Kind != probe.KindICMPEcho && want[r.Tuple.SrcPort] {
			out = append(out, r)
		}
	}
	return out
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
