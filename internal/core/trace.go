package core

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/retry"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// Trace classifies every flow of cfg end to end, then probes each at every
// TTL up to just past the target's distance, and returns the assembled,
// bucketed and diagnosed trace. Tracing needs raw sockets.
func Trace(ctx context.Context, cfg TraceConfig, env Env) (report.Trace, error) {
	target, src, err := resolve(cfg.Target, env)
	if err != nil {
		return report.Trace{}, err
	}
	raw, err := env.Probers.Raw(src, target, true) // the ICMP socket reads the time-exceeded answers
	switch {
	case errors.Is(err, probe.ErrPermission):
		return report.Trace{}, cannotProbe(fmt.Errorf("tracing needs raw sockets: %w; run as root or grant `sudo setcap cap_net_raw+ep $(command -v ecmpscan)`", probe.ErrPermission))
	case errors.Is(err, probe.ErrUnsupported):
		return report.Trace{}, cannotProbe(fmt.Errorf("tracing needs raw sockets: %w", err))
	case err != nil:
		return report.Trace{}, cannotProbe(fmt.Errorf("open raw sockets: %w", err))
	}
	set := single(raw)
	defer set.close()
	t := &tracer{ctx: ctx, cfg: cfg, env: env, set: set, rng: env.rng()}
	started := env.clock().Now()
	two, err := registerRun(ctx, cfg.Ports, traceBudget(cfg), src, target, env)
	if err != nil {
		return report.Trace{}, err
	}
	t.two = two

	c := newCollector()
	dst := netip.AddrPortFrom(unzoned(target.Addr()), target.Port())
	tuples := probe.Tuples(unzoned(src), dst, cfg.Ports)
	t.gateway = route.Common(ctx, env.FirstHop, tuples)
	st, interrupted, err := set.run(ctx, probe.NewRounds(tuples, probe.KindTCPSYN, nil, cfg.Count, t.rng), cfg.Probing, c, env)
	if err != nil {
		return report.Trace{}, err
	}
	t.stats.Add(st)
	e2e, _ := hash.Judge(c.tcp.Buckets(), hash.DefaultAlpha)
	e2e, t.rest = pickTraced(e2e, cfg.Flows)
	var seen *report.TwoEnded
	if two != nil {
		// What arrived of the end-to-end probes, before the TTL-limited
		// ones: the direction of each failing flow, for the diagnosis.
		seen = two.fetch(ctx, set.passes)
		t.arrived = arrivals(seen, cfg.Ports)
	}
	if interrupted {
		tr := t.report(target, src, e2e, report.NewHops())
		tr.Interrupted, tr.TwoEnded = true, seen
		tr.Started, tr.Duration = started, env.clock().Now().Sub(started)
		return tr, nil
	}
	tr, err := t.hops(target, src, e2e, c.hopsAway)
	tr.Started, tr.Duration = started, env.clock().Now().Sub(started)
	if seen != nil {
		seen.Gateway = t.returnGateway
	}
	tr.TwoEnded = seen
	return tr, err
}

// tracer is one trace phase under way.
type tracer struct {
	ctx   context.Context // the job's
	cfg   TraceConfig
	env   Env
	set   *probers
	rng   *rand.Rand
	stats probe.Stats
	// arrived is what the responder saw arrive, by source port; rest the
	// flows classified but not traced (pickTraced), which the diagnosis
	// weighs the traced ones back to, and looked the second look that
	// traced some of them (look.go).
	arrived map[uint16]bool
	rest    []hash.Judged
	looked  *report.Looked
	// plan is the first pass's retries (internal/retry), kept for
	// listenLonger; nil without rate limits or patience.
	plan *retry.Plan
	// two is the run's registration with the target's responder, which
	// traces the return paths; nil without one.
	two *twoEnded
	// gateway is this host's first hop for the traced flows (route.Common);
	// returnGateway the target's, as its responder looked it up.
	gateway, returnGateway netip.Addr
	// aliases is the alias test's finding (alias.go), limits the
	// rate-limit alias test's (ratelimit_alias.go); nil when none ran.
	aliases *report.AliasTest
	limits  *report.RateLimitTest
}

// hops probes the flows of e2e at every TTL up to one past the target's
// distance (hopsAway, from the TTL of its answers) and assembles the
// trace. A server left half-open by an earlier pass answers the next SYN
// on the flow with a bare ACK of that pass's probe, which answers nothing.
func (t *tracer) hops(target netip.AddrPort, src netip.Addr, e2e []hash.Judged, hopsAway int) (report.Trace, error) {
	maxTTL := t.cfg.MaxTTL
	if hopsAway > 0 {
		// One past the estimate: the return path may be a hop shorter.
		maxTTL = min(maxTTL, hopsAway+1)
	}
	var tuples []hash.FiveTuple
	for _, f := range e2e {
		if f.State != hash.StateError {
			tuples = append(tuples, f.Tuple)
		}
	}
	c := newCollector()
	interrupted := false
	if len(tuples) > 0 {
		var err error
		if interrupted, err = t.send(c, probe.NewTraceRounds(tuples, maxTTL, t.cfg.HopProbes, t.rng)); err != nil {
			return report.Trace{}, err
		}
	}
	var retried *report.Retried
	if !interrupted {
		var err error
		if retried, interrupted, err = t.retry(c, e2e); err != nil {
			return report.Trace{}, err
		}
	}
	tr, looked, interrupted, err := t.decide(c, target, src, e2e, maxTTL, interrupted)
	if err != nil {
		return report.Trace{}, err
	}
	tr.MaxTTL, tr.Interrupted, tr.Retried = maxTTL, interrupted, addRetried(retried, looked)
	if !interrupted {
		t.traceBack(&tr)
	}
	return tr, nil
}

// decide diagnoses the trace, then takes the second look the diagnosis
// asks for and listens longer while it cannot decide (listenLonger), each
// followed by the diagnosis again; unless interrupted, then or before.
// looked is the second look's flows' retries.
func (t *tracer) decide(c *collector, target netip.AddrPort, src netip.Addr, e2e []hash.Judged, maxTTL int, interrupted bool) (tr report.Trace, looked *report.Retried, _ bool, err error) {
	tr = t.report(target, src, e2e, c.hops)
	if l := tr.Diagnosis.Look; l != nil && !interrupted && len(t.rest) > 0 {
		if e2e, looked, interrupted, err = t.look(c, *l, e2e, maxTTL); err != nil {
			return tr, nil, false, err
		}
		tr = t.report(target, src, e2e, c.hops)
	}
	if tr.Diagnosis.Direction == report.DirectionUnknown && !interrupted {
		more, stopped, err := t.listenLonger(c)
		if err != nil {
			return tr, looked, false, err
		}
		if more {
			tr, interrupted = t.report(target, src, e2e, c.hops), stopped
		}
	}
	undecided := tr.Diagnosis.Direction == report.DirectionUnknown && t.cfg.AliasTest == AliasTestsUndecided
	if !interrupted && (undecided || t.cfg.AliasTest == AliasTestsAlways) {
		tr, interrupted, err = t.aliasTests(tr, func() report.Trace { return t.report(target, src, e2e, c.hops) })
	}
	return tr, looked, interrupted, err
}

// retry probes the silent hops of rate-limited routers again, a round a
// second, within the patience (internal/retry); nil when there are none.
// Without patience it only finds them.
func (t *tracer) retry(c *collector, e2e []hash.Judged) (*report.Retried, bool, error) {
	tuples := map[uint16]hash.FiveTuple{}
	for _, j := range e2e {
		tuples[j.Tuple.SrcPort] = j.Tuple
	}
	plan := retry.New(report.TraceFlows(e2e, c.hops), tuples, probe.KindTCPSYN, t.rng)
	switch {
	case plan == nil:
		return nil, false, nil
	case t.cfg.Patience <= 0:
		return &plan.Retried, false, nil // found, and said so, but not probed again
	}
	if t.plan == nil {
		t.plan = plan // the first pass's: listenLonger may take it up again
	}
	interrupted, err := t.runPlan(c, plan, t.cfg.HopProbes)
	if err != nil {
		return nil, false, err
	}
	return &plan.Retried, interrupted, nil
}

// runPlan probes a retry plan's rounds for a patience, the first round's
// probes numbered from repeat on.
func (t *tracer) runPlan(c *collector, plan *retry.Plan, repeat int) (bool, error) {
	send := func(probes probe.List) (bool, error) { return t.send(c, probes) }
	return plan.Run(t.ctx, t.env.clock(), t.cfg.Patience, repeat, send, c.hops.Answered)
}

// listenLonger takes the first pass's retries up again, for as long
// again, where the diagnosis cannot decide (unknown): under rate limits
// the silences that tell a forward fault from a return one come at one a
// second per router, and the holes left when the patience ran out are
// where a decision lies. Once. more is false when nothing was left to
// probe (no rate limit, or every hole answered or given up).
func (t *tracer) listenLonger(c *collector) (more, interrupted bool, err error) {
	p := t.plan
	if p == nil || p.Done() {
		return false, false, nil
	}
	p.Retried.Longer = true
	// Its rounds go on numbering where they stopped.
	interrupted, err = t.runPlan(c, p, t.cfg.HopProbes+p.Retried.Rounds)
	return true, interrupted, err
}

// aliasTests asks the routers which addresses are one's: by timestamps
// (alias.go), then by their rate limits (ratelimit_alias.go), the second
// only while the diagnosis still cannot decide unless always. diagnose
// assembles and diagnoses the trace again with what they found.
func (t *tracer) aliasTests(tr report.Trace, diagnose func() report.Trace) (report.Trace, bool, error) {
	var interrupted bool
	var err error
	if t.aliases, interrupted, err = t.aliasTest(tr); t.aliases != nil && len(t.aliases.Groups) > 0 {
		tr = diagnose()
	}
	tr.Aliases = t.aliases
	always := t.cfg.AliasTest == AliasTestsAlways
	if err != nil || interrupted || (tr.Diagnosis.Direction != report.DirectionUnknown && !always) {
		return tr, interrupted, err
	}
	decided := func(l *report.RateLimitTest) bool {
		t.limits = l
		return !always && diagnose().Diagnosis.Direction != report.DirectionUnknown
	}
	if t.limits, interrupted, err = t.rateLimitTest(tr, decided); t.limits != nil && len(t.limits.Groups) > 0 {
		tr = diagnose()
	}
	tr.RateLimits = t.limits
	return tr, interrupted, err
}

// report assembles, buckets and diagnoses. Flows none of whose probes
// left the host carry no evidence and are listed apart.
func (t *tracer) report(target netip.AddrPort, src netip.Addr, e2e []hash.Judged, hops *report.Hops) report.Trace {
	tr := report.Trace{
		Host: t.cfg.Host, Target: target, Source: src, Mode: string(ModeRaw), MaxTTL: t.cfg.MaxTTL,
		ProbesPerHop: t.cfg.HopProbes, Count: t.cfg.Count,
	}
	for _, f := range report.TraceFlows(e2e, hops) {
		if f.State == hash.StateError {
			tr.NotProbed = append(tr.NotProbed, f.Sport)
			continue
		}
		tr.Flows = append(tr.Flows, f)
	}
	tr.Buckets = report.BucketPaths(tr.Flows)
	tr.Untraced, tr.Looked, tr.Aliases, tr.RateLimits = countStates(t.rest), t.looked, t.aliases, t.limits
	sample := tr.Sample()
	sample.Arrived = t.arrived
	tr.Diagnosis = report.DiagnoseSample(tr.Flows, sample)
	tr.Gateway = t.gateway
	tr.Diagnosis = report.WithFirstHop(tr.Diagnosis, tr.Flows, t.gateway)
	return tr
}
