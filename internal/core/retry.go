package core

import (
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// Routers rate-limit the ICMP errors they send to one destination. Linux
// does by default: a burst of 6, then one a second (net.ipv4.icmp_ratelimit,
// per destination), so a fast trace of many flows sees most hops of plain
// Linux routers silent, and a silence that says nothing. The first pass
// finds the rate-limited TTLs (report.RateLimitedTTLs). Their silent hops
// are probed again in rounds a second apart, the time such a bucket takes
// to earn one answer back, each round as many probes per TTL as addresses
// answered there, the failing flows' silent hops and the healthy flows' in
// turn (so that both are sampled alike), each TTL in an order of its own
// (so that no flow is left silent at every hop), until the patience is
// spent, or at a TTL until a round brings nothing new there (a router
// silent by configuration).

// retryRound is the time between rounds.
const retryRound = time.Second

// retryPlan is what is left to probe again.
type retryPlan struct {
	quota map[int]int              // probes per round, by TTL
	holes map[int][]hash.FiveTuple // silent hops by TTL, in the order to probe them
	// retried is what the trace reports of it.
	retried report.Retried
}

// planRetries finds the rate-limited TTLs of a first pass
// (report.RateLimitedTTLs) and their silent hops; nil when there are none.
func planRetries(e2e []hash.Judged, hops *report.Hops, rng *rand.Rand) *retryPlan {
	flows := report.TraceFlows(e2e, hops)
	ttls := report.RateLimitedTTLs(flows)
	if len(ttls) == 0 {
		return nil
	}
	var failing, ok []report.FlowTrace
	for _, f := range flows {
		switch f.State {
		case hash.StateOK:
			ok = append(ok, f)
		case hash.StateFail:
			failing = append(failing, f)
		}
	}
	tuples := map[uint16]hash.FiveTuple{}
	for _, j := range e2e {
		tuples[j.Tuple.SrcPort] = j.Tuple
	}
	p := &retryPlan{quota: map[int]int{}, holes: map[int][]hash.FiveTuple{}}
	for _, ttl := range ttls {
		addrs := map[netip.Addr]bool{}
		for _, f := range flows {
			if ttl <= len(f.Hops) && f.Hops[ttl-1].Addr.IsValid() {
				addrs[f.Hops[ttl-1].Addr] = true
				for _, o := range f.Hops[ttl-1].Others {
					addrs[o] = true
				}
			}
		}
		p.quota[ttl] = max(len(addrs), 1)
		// Each TTL in an order of its own, as in the first pass.
		for _, f := range interleave(shuffledFlows(failing, rng), shuffledFlows(ok, rng)) {
			if ttl <= len(f.Hops) && f.Hops[ttl-1].Answers == 0 {
				p.holes[ttl] = append(p.holes[ttl], tuples[f.Sport])
			}
		}
		p.retried.TTLs = append(p.retried.TTLs, ttl)
		p.retried.Holes += len(p.holes[ttl])
	}
	return p
}

func shuffledFlows(fs []report.FlowTrace, rng *rand.Rand) []report.FlowTrace {
	out := slices.Clone(fs)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// interleave takes from a and b in turn, a first.
func interleave(a, b []report.FlowTrace) []report.FlowTrace {
	out := make([]report.FlowTrace, 0, len(a)+len(b))
	for i := 0; i < len(a) || i < len(b); i++ {
		if i < len(a) {
			out = append(out, a[i])
		}
		if i < len(b) {
			out = append(out, b[i])
		}
	}
	return out
}

// next is a round's probes: up to the quota of the holes at each TTL, the
// ones probed least first; repeat tells them from the earlier rounds'.
func (p *retryPlan) next(repeat int) probe.List {
	var out probe.List
	for _, ttl := range slices.Sorted(maps.Keys(p.holes)) {
		hs := p.holes[ttl]
		n := min(p.quota[ttl], len(hs))
		for _, f := range hs[:n] {
			out = append(out, probe.Probe{Kind: probe.KindTCPSYN, Tuple: f, Repeat: repeat, TTL: uint8(ttl)})
		}
		// Rotate: the ones just probed go last.
		p.holes[ttl] = append(slices.Clone(hs[n:]), hs[:n]...)
	}
	return out
}

// settle drops the holes that got an answer, and the TTLs where this round
// brought none, and counts the round.
func (p *retryPlan) settle(hops *report.Hops, probed probe.List) {
	got := map[int]int{}
	for _, pr := range probed {
		if hops.Answered(pr.Tuple.SrcPort, int(pr.TTL)) {
			got[int(pr.TTL)]++
		}
	}
	p.retried.Rounds++
	p.retried.Probes += len(probed)
	for ttl, hs := range p.holes {
		if got[ttl] == 0 {
			delete(p.holes, ttl)
			continue
		}
		p.retried.Answers += got[ttl]
		p.holes[ttl] = slices.DeleteFunc(hs, func(f hash.FiveTuple) bool { return hops.Answered(f.SrcPort, ttl) })
		if len(p.holes[ttl]) == 0 {
			delete(p.holes, ttl)
		}
	}
}
