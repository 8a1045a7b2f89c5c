package core

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// twoEnded is a sweep's registration with the target's responder.
type twoEnded struct {
	r   Responder
	run string
	err error // the responder could not be reached: the sweep goes on without it
}

// registerSweep registers the sweep's SYNs before any is sent. A responder
// that answers with a refusal (a wrong token, a scope it will not watch)
// stops the sweep: what was asked cannot be done. One that cannot be
// reached (the control connection may cross the bad member too) is noted
// and the sweep goes on one-ended.
func registerSweep(ctx context.Context, cfg SweepConfig, src netip.Addr, target netip.AddrPort, env Env) (*twoEnded, error) {
	return registerRun(ctx, cfg.Ports, sweepBudget(cfg), src, target, env)
}

// registerRun registers the SYNs of ports for budget (see registerSweep).
func registerRun(ctx context.Context, ports []uint16, budget time.Duration, src netip.Addr, target netip.AddrPort, env Env) (*twoEnded, error) {
	if env.Responder == nil {
		return nil, nil
	}
	t := &twoEnded{r: env.Responder, run: responder.NewRunID()}
	reg := responder.Register{Run: t.run, Client: unzoned(src).Unmap().String(),
		Target: netip.AddrPortFrom(unzoned(target.Addr()).Unmap(), target.Port()).String(),
		Sports: portRanges(ports), DurationMS: budget.Milliseconds()}
	if _, err := t.r.Register(ctx, reg); err != nil {
		if refused(err) {
			return nil, cannotProbe(fmt.Errorf("responder %s: %w", t.r.Name(), err))
		}
		env.notice("responder %s could not be reached (%v); the sweep goes on without it", t.r.Name(), err)
		t.err = err
	}
	return t, nil
}

// refused reports whether the responder itself said no.
func refused(err error) bool {
	for _, e := range []error{responder.ErrAuth, responder.ErrScope, responder.ErrBusy, responder.ErrMalformed, responder.ErrReplay} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ans interface{ Refusal() bool }
	return errors.As(err, &ans) && ans.Refusal()
}

// fetch asks what arrived, even after an interrupt (what arrived so far is
// evidence), within its own deadline. passes, when the probes were raw
// SYNs carrying their cookies, tell the run's own SYNs from others on the
// same tuples; nil (connect mode: the kernel picks the sequence numbers)
// takes every SYN.
func (t *twoEnded) fetch(ctx context.Context, passes []pass) *report.TwoEnded {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	return t.report(ctx, passes)
}

// report fetches what arrived, for the sweep's report.
func (t *twoEnded) report(ctx context.Context, passes []pass) *report.TwoEnded {
	out := &report.TwoEnded{Responder: t.r.Name(), Arrived: map[uint16]int{}, TTL: map[uint16]uint8{}, ByProbe: passes != nil}
	if t.err == nil {
		rep, err := t.r.Report(ctx, t.run)
		t.err = err
		for _, a := range rep.Arrivals {
			n, ttl, foreign := ownArrivals(a, passes)
			out.Foreign += foreign
			if n > 0 {
				out.Arrived[a.Sport], out.TTL[a.Sport] = n, ttl
			}
		}
		out.Dropped = rep.Dropped
	}
	if t.err != nil {
		out.Err = t.err.Error()
	}
	out.Retries = t.r.Retried()
	return out
}

// arrivals is what the diagnosis may take from the responder: the ports
// whose SYNs arrived and, when its socket dropped nothing, those whose SYNs
// did not.
func arrivals(t *report.TwoEnded, ports []uint16) map[uint16]bool {
	if t == nil || t.Err != "" {
		return nil
	}
	out := map[uint16]bool{}
	for _, sp := range ports {
		if n := t.Arrived[sp]; n > 0 || t.Dropped == 0 {
			out[sp] = n > 0
		}
	}
	return out
}

// traceBudget is how long the responder should watch a trace's flows, and
// have for tracing some back.
func traceBudget(cfg TraceConfig) time.Duration {
	d := watchBudget(len(cfg.Ports)*max(cfg.Count, 1)+HopProbes(cfg.TraceOptions, len(cfg.Ports)), cfg.Probing) + retryBudget(cfg.TraceOptions) + reverseBudget(cfg.TraceOptions, cfg.Probing)
	return min(d, responder.DefaultMaxDuration)
}

// retryBudget is the time a trace may spend probing rate-limited holes
// again: a patience after the first pass, one for a second look's flows,
// and one more when the diagnosis cannot decide (listenLonger).
func retryBudget(o TraceOptions) time.Duration { return 3 * max(o.Patience, 0) }

// reverseBudget is the time the responder's return-path traces may take at
// its default probe rate.
func reverseBudget(o TraceOptions, p Probing) time.Duration {
	probes := responder.MaxReverseFlows * min(o.MaxTTL, responder.MaxReverseTTL) * min(max(o.HopProbes, 1), responder.MaxReversePerHop)
	rate := float64(responder.DefaultProbeRate)
	if p.Rate > 0 {
		rate = min(rate, p.Rate)
	}
	return time.Duration(float64(probes)/rate*float64(time.Second)) + p.Timeout + reversePatience(o)
}

// reversePatience is how long the responder probes again the return
// paths' rate-limited hops: the trace's own patience, within the
// responder's bound.
func reversePatience(o TraceOptions) time.Duration {
	return min(max(o.Patience, 0), responder.MaxReversePatienceMS*time.Millisecond)
}

// sweepBudget is how long the responder should watch: the probes at the
// configured rate, their timeouts, and room for planned rounds.
func sweepBudget(cfg SweepConfig) time.Duration {
	probes := len(cfg.Ports) * max(cfg.Count, 1)
	if cfg.Plan != nil {
		probes = len(cfg.Ports) * hash.DefaultMaxRepeats
	}
	d := watchBudget(probes, cfg.Probing)
	if cfg.Trace != nil {
		d += watchBudget(64*cfg.Trace.MaxTTL*cfg.Trace.HopProbes, cfg.Probing) + retryBudget(*cfg.Trace) + reverseBudget(*cfg.Trace, cfg.Probing)
	}
	return min(d, responder.DefaultMaxDuration)
}

// watchBudget is the time probes take at the configured rate, with room for
// timeouts, within the responder's longest run.
func watchBudget(probes int, p Probing) time.Duration {
	d := 2*p.Timeout + 30*time.Second
	if p.Rate > 0 {
		d += time.Duration(float64(probes) / p.Rate * float64(time.Second))
	}
	return min(d, responder.DefaultMaxDuration)
}

// portRanges compresses source ports into ranges.
func portRanges(ports []uint16) []responder.PortRange {
	var out []responder.PortRange
	for _, p := range ports {
		if n := len(out); n > 0 && out[n-1].Last+1 == p && p != 0 {
			out[n-1].Last = p
			continue
		}
		out = append(out, responder.PortRange{First: p, Last: p})
	}
	return out
}

// ownArrivals counts a port's SYNs that are this run's probes on that port,
// decoded from their sequence numbers with the passes' secrets; SYNs past
// the ones the responder recorded one by one cannot be checked and count
// as the run's. Without passes every SYN counts.
func ownArrivals(a responder.Arrival, passes []pass) (n int, ttl uint8, foreign int) {
	if passes == nil {
		return a.Count, a.TTL, 0
	}
	for _, pa := range a.Probes {
		if ownSYN(pa.Seq, a.Sport, passes) {
			if n == 0 {
				ttl = pa.TTL
			}
			n++
		} else {
			foreign++
		}
	}
	if rest := a.Count - len(a.Probes); rest > 0 {
		n += rest
		if ttl == 0 {
			ttl = a.TTL
		}
	}
	return n, ttl, foreign
}

func ownSYN(seq uint32, sport uint16, passes []pass) bool {
	for _, ps := range passes {
		if p, ok := probe.ProbeOf(ps.secret, ps.src, seq); ok && p.Kind == probe.KindTCPSYN && p.Tuple.SrcPort == sport {
			return true
		}
	}
	return false
}
