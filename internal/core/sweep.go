package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// Sweep probes every source port of cfg (and ICMP echo), judges each flow,
// optionally traces some of them, and returns the report with its verdict.
// An interrupted sweep returns its partial report with Interrupted set.
func Sweep(ctx context.Context, cfg SweepConfig, env Env) (report.Sweep, error) {
	target, src, err := resolve(cfg.Target, env)
	if err != nil {
		return report.Sweep{}, err
	}
	clock := env.clock()
	started := clock.Now()
	rng := env.rng()
	dst := unzoned(target.Addr())
	var echo []hash.FiveTuple
	if cfg.ICMP > 0 {
		echo = probe.EchoTuples(unzoned(src), dst, uint16(rng.Uint32()), cfg.ICMP)
	}
	set, err := openSweep(cfg, src, target, echo, env)
	if err != nil {
		return report.Sweep{}, err
	}
	defer set.close()
	if set.icmpSkipped != "" {
		echo = nil
	}
	two, err := registerSweep(ctx, cfg, src, target, env)
	if err != nil {
		return report.Sweep{}, err
	}
	s := &sweep{ctx: ctx, cfg: cfg, env: env, set: set, rng: rng, c: newCollector(),
		tcp: probe.Tuples(unzoned(src), netip.AddrPortFrom(dst, target.Port()), cfg.Ports), echo: echo}
	if cfg.Plan == nil {
		err = s.rounds()
	} else {
		err = s.planned()
	}
	if err != nil {
		return report.Sweep{}, err
	}

	out := report.Sweep{
		Host: cfg.Host, Target: target, Source: src, Mode: string(set.mode), Count: cfg.Count, Rate: cfg.Rate,
		Timeout: cfg.Timeout, Started: started, Interrupted: s.interrupted, Plan: s.plan,
		ICMP: report.ICMP{Skipped: set.icmpSkipped},
	}
	var loss float64
	out.Ports, loss = hash.Judge(s.c.tcp.Buckets(), hash.DefaultAlpha)
	out.ICMP.IDs, _ = hash.Judge(s.c.echo.Buckets(), hash.DefaultAlpha)
	if cfg.ICMP == 0 {
		out.ICMP.Skipped = "disabled with --icmp 0"
	}
	if two != nil {
		// Asked even after an interrupt: what arrived so far is evidence.
		// Asked before the trace, whose TTL-limited SYNs are not the
		// sweep's, and whose diagnosis uses what arrived.
		var passes []pass
		if set.raw {
			passes = set.passes // raw SYNs carry their cookies
		}
		out.TwoEnded = two.fetch(ctx, passes)
	}
	var pathWidth hash.WidthEstimate
	if cfg.Trace != nil && !s.interrupted {
		if tr, ok, err := s.trace(out.Ports, target, src, two, arrivals(out.TwoEnded, cfg.Ports)); err != nil {
			return report.Sweep{}, err
		} else if ok {
			out.Trace = &tr
			out.Interrupted = tr.Interrupted
			pathWidth = report.TraceWidth(tr)
		}
	}
	out.Unmatched, out.Malformed, out.HalfOpen = s.stats.Unmatched, s.stats.Malformed, s.stats.HalfOpen
	out.LocalDrops, out.SendFailures = s.stats.LocalDrops, sendFailures(s.stats)
	out.Summary = report.Summarize(out, loss, pathWidth)
	out.Duration = clock.Now().Sub(started)
	return out, nil
}

// sweepProbers are a sweep's open probers.
type sweepProbers struct {
	*probers
	mode        Mode
	raw         bool   // raw sockets: a trace can follow
	icmpSkipped string // why ICMP is not probed, if it is not
}

// openSweep picks raw or connect mode. In auto mode a missing privilege
// (or a system without raw sockets) is not an error: it falls back to
// connect mode and says so. In connect mode ICMP goes over unprivileged
// ping sockets where the system allows them; icmpSkipped says why not
// otherwise.
func openSweep(cfg SweepConfig, src netip.Addr, target netip.AddrPort, echo []hash.FiveTuple, env Env) (*sweepProbers, error) {
	if cfg.Mode != ModeConnect {
		raw, err := env.Probers.Raw(src, target, len(echo) > 0 || cfg.Trace != nil)
		fallback := errors.Is(err, probe.ErrPermission) || errors.Is(err, probe.ErrUnsupported)
		switch {
		case err == nil:
			return &sweepProbers{probers: single(raw), mode: ModeRaw, raw: true}, nil
		case fallback && cfg.Mode == ModeAuto && errors.Is(err, probe.ErrUnsupported):
			env.notice("%v; using connect mode", probe.ErrUnsupported)
		case fallback && cfg.Mode == ModeAuto:
			env.notice("%v; using connect mode (for raw SYN probes: sudo setcap cap_net_raw+ep $(command -v ecmpscan))", probe.ErrPermission)
		case errors.Is(err, probe.ErrPermission):
			return nil, cannotProbe(fmt.Errorf("%w; run as root, grant the capability with `sudo setcap cap_net_raw+ep $(command -v ecmpscan)`, or use --mode connect", probe.ErrPermission))
		case errors.Is(err, probe.ErrUnsupported):
			return nil, cannotProbe(fmt.Errorf("%w; use --mode connect", err))
		default:
			return nil, cannotProbe(fmt.Errorf("open raw sockets: %w", err))
		}
	}
	cp, err := env.Probers.Connect(cfg.Timeout)
	if err != nil {
		return nil, cannotProbe(fmt.Errorf("connect mode: %w", err))
	}
	p := &sweepProbers{probers: single(cp), mode: ModeConnect}
	if len(echo) == 0 {
		return p, nil
	}
	ping, err := env.Probers.Ping(unzoned(src), echo)
	if err != nil {
		p.icmpSkipped = fmt.Sprintf("connect mode: %v", err)
		return p, nil
	}
	p.sender = probe.SenderByKind{probe.KindConnect: cp, probe.KindICMPEcho: ping}
	p.receivers = append(p.receivers, ping.Receivers()...)
	p.closers = append(p.closers, ping.Close)
	return p, nil
}

// sweep is one sweep job under way.
type sweep struct {
	ctx         context.Context // the job's: a sweep lives for one call
	cfg         SweepConfig
	env         Env
	set         *sweepProbers
	rng         *rand.Rand
	c           *collector
	tcp, echo   []hash.FiveTuple
	stats       probe.Stats
	interrupted bool
	plan        *report.SweepPlan
}

func (s *sweep) tcpKind() probe.Kind {
	if s.set.mode == ModeConnect {
		return probe.KindConnect
	}
	return probe.KindTCPSYN
}

// pass runs one engine pass over tcp and echo flows, repeats times.
func (s *sweep) pass(tcp, echo []hash.FiveTuple, repeats int) (probe.Stats, error) {
	src := probe.NewRounds(tcp, s.tcpKind(), echo, repeats, s.rng)
	st, interrupted, err := s.set.run(s.ctx, src, s.cfg.Probing, s.c, s.env)
	s.stats.Add(st)
	s.interrupted = s.interrupted || interrupted
	return st, err
}

// rounds is a plain sweep: count rounds over every flow.
func (s *sweep) rounds() error {
	_, err := s.pass(s.tcp, s.echo, s.cfg.Count)
	return err
}

// planned probes in rounds until the verdict is settled at the planned
// confidence (hash.Settled): every port at least the planned repeats, and
// no port whose losses background loss could still explain. Repeats follow
// the loss measured so far; rounds stop at hash.DefaultMaxRepeats. Ports
// whose probes cannot leave the host are not probed again and again: they
// end as error, and the plan says so.
func (s *sweep) planned() error {
	s.plan = &report.SweepPlan{Plan: *s.cfg.Plan}
	plan := s.plan
	var judged []hash.Judged // the measured ports after the last round
	for plan.Rounds < hash.DefaultMaxRepeats {
		round := s.tcp
		if len(judged) > 0 {
			round = unsettledFlows(s.tcp, judged, plan.Repeats)
		}
		var echoRound []hash.FiveTuple
		if plan.Rounds < plan.Repeats {
			echoRound = s.echo
		}
		if len(round)+len(echoRound) == 0 {
			plan.Stopped = fmt.Sprintf("stopped after %d rounds: the ports left unsettled could not be probed", plan.Rounds)
			return nil
		}
		st, err := s.pass(round, echoRound, 1)
		if err != nil {
			return err
		}
		plan.Rounds++
		switch {
		case s.interrupted:
			plan.Stopped = "interrupted"
			return nil
		case st.Sent == 0:
			plan.Stopped = fmt.Sprintf("stopped after %d rounds: no probe of the last round left the host", plan.Rounds)
			return nil
		}
		ports := measured(s.c.tcp.Buckets())
		var loss float64
		judged, loss = hash.Judge(ports, hash.DefaultAlpha)
		// The measured loss decides how many lost probes make a port dead.
		plan.Repeats = max(plan.Repeats, hash.RepeatsForLoss(loss, hash.DefaultAlpha, hash.DefaultMaxRepeats))
		if done, why := hash.Settled(ports, plan.Plan, hash.DefaultAlpha); done {
			plan.Stopped = why
			return nil
		}
		plan.Stopped = fmt.Sprintf("stopped after %d rounds (the cap) without settling", plan.Rounds)
	}
	return nil
}

// unsettledFlows are the measured flows that need another probe: fewer
// than the planned repeats, or every probe lost while the background loss
// could still explain it.
func unsettledFlows(tcp []hash.FiveTuple, judged []hash.Judged, repeats int) []hash.FiveTuple {
	need := map[uint16]bool{}
	for _, p := range judged {
		if p.Sent < repeats || (p.Received == 0 && p.State != hash.StateFail) {
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

// trace follows a sweep: the failing ports, some flaky ones and healthy
// ones for contrast, hop by hop, with the sweep's states as their
// end-to-end result. false when tracing cannot run here.
func (s *sweep) trace(ports []hash.Judged, target netip.AddrPort, src netip.Addr, two *twoEnded, arrived map[uint16]bool) (report.Trace, bool, error) {
	if !s.set.raw {
		s.env.notice("--trace skipped: tracing needs raw sockets")
		return report.Trace{}, false, nil
	}
	e2e, rest := pickTraced(ports, s.cfg.Trace.Flows)
	tc := TraceConfig{Target: s.cfg.Target, Probing: s.cfg.Probing, TraceOptions: *s.cfg.Trace}
	t := &tracer{ctx: s.ctx, cfg: tc, env: s.env, set: s.set.probers, rng: s.rng, two: two, rest: rest}
	t.arrived = arrived
	started := s.env.clock().Now()
	tr, err := t.hops(target, src, e2e, s.c.hopsAway)
	tr.Started, tr.Duration = started, s.env.clock().Now().Sub(started)
	s.stats.Add(t.stats)
	return tr, true, err
}

// SweepProbes is the most probes a sweep can send: every round of every
// flow, and the trace after it. The CLI's --max-probes and the exporter's
// deadline check both count with it.
func SweepProbes(c SweepConfig) int {
	repeats := c.Count
	if c.Plan != nil {
		repeats = hash.DefaultMaxRepeats
	}
	total := (len(c.Ports) + c.ICMP) * repeats
	if c.Trace != nil {
		total += HopProbes(*c.Trace, len(c.Ports))
	}
	return total
}
