// Package retry probes again the silent hops of routers that rate-limit
// their ICMP errors: for the client's own traces (internal/core) and for
// the responder's traces of the return paths (internal/responder).
//
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
// spent, or at a TTL until a whole turn over its holes brings nothing new
// there (each behind a router silent by configuration, or a dead link).
// Not one dry round: the failing flows' holes go first, and where a dead
// link or a silent member is what failed them, the first round probes
// only holes that can never answer, the very silence that tells a forward
// fault from a return one, worth a probe or two more each.
package retry

import (
	"cmp"
	"context"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// Round is the time between rounds.
const Round = time.Second

// Plan is what is left to probe again.
type Plan struct {
	kind   probe.Kind
	tuples map[uint16]hash.FiveTuple // by the flow's source port (the client's)
	quota  map[int]int               // probes per round, by TTL
	holes  map[int][]uint16          // silent hops by TTL, in the order to probe them
	sent   map[int]int               // the last round's probes, by TTL
	dry    map[int]int               // probes since the TTL's last answer, by TTL
	// Budget, when set, bounds the probes sent again in all.
	Budget int
	// Retried is what the trace reports of it.
	Retried report.Retried
}

// New finds the rate-limited TTLs of a first pass over flows
// (report.RateLimitedTTLs) and their silent hops; nil when there are
// none. tuples are the probes' tuples by the flows' source ports, kind
// the probes' kind.
func New(flows []report.FlowTrace, tuples map[uint16]hash.FiveTuple, kind probe.Kind, rng *rand.Rand) *Plan {
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
	p := &Plan{kind: kind, tuples: tuples, quota: map[int]int{}, holes: map[int][]uint16{}, sent: map[int]int{}, dry: map[int]int{}}
	for _, ttl := range ttls {
		p.quota[ttl] = max(answering(flows, ttl), 1)
		// Each TTL in an order of its own, as in the first pass; the
		// failing flows that answered least first: a flow with no answer
		// at any TTL says nothing of where it died.
		fails := shuffled(failing, rng)
		slices.SortStableFunc(fails, func(a, b report.FlowTrace) int { return cmp.Compare(answeredHops(a), answeredHops(b)) })
		for _, f := range interleave(fails, shuffled(ok, rng)) {
			if _, known := tuples[f.Sport]; known && ttl <= len(f.Hops) && f.Hops[ttl-1].Answers == 0 {
				p.holes[ttl] = append(p.holes[ttl], f.Sport)
			}
		}
		p.Retried.TTLs = append(p.Retried.TTLs, ttl)
		p.Retried.Holes += len(p.holes[ttl])
	}
	return p
}

// answeredHops counts the hops of a flow that answered.
func answeredHops(f report.FlowTrace) int {
	n := 0
	for _, h := range f.Hops {
		if h.Answers > 0 {
			n++
		}
	}
	return n
}

// answering counts the addresses that answered at ttl.
func answering(flows []report.FlowTrace, ttl int) int {
	addrs := map[netip.Addr]bool{}
	for _, f := range flows {
		if ttl <= len(f.Hops) && f.Hops[ttl-1].Addr.IsValid() {
			addrs[f.Hops[ttl-1].Addr] = true
			for _, o := range f.Hops[ttl-1].Others {
				addrs[o] = true
			}
		}
	}
	return len(addrs)
}

func shuffled(fs []report.FlowTrace, rng *rand.Rand) []report.FlowTrace {
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

// Done says nothing is left to probe again, or the budget is spent.
func (p *Plan) Done() bool {
	return len(p.holes) == 0 || (p.Budget > 0 && p.Retried.Probes >= p.Budget)
}

// Next is a round's probes: up to the quota of the holes at each TTL, the
// ones probed least first; repeat tells them from the earlier rounds'.
func (p *Plan) Next(repeat int) probe.List {
	var out probe.List
	for _, ttl := range slices.Sorted(maps.Keys(p.holes)) {
		hs := p.holes[ttl]
		n := min(p.quota[ttl], len(hs))
		if p.Budget > 0 {
			n = max(min(n, p.Budget-p.Retried.Probes-len(out)), 0)
		}
		for _, sp := range hs[:n] {
			out = append(out, probe.Probe{Kind: p.kind, Tuple: p.tuples[sp], Repeat: repeat, TTL: uint8(ttl)})
		}
		p.sent[ttl] = n
		// Rotate: the ones just probed go last.
		p.holes[ttl] = append(slices.Clone(hs[n:]), hs[:n]...)
	}
	return out
}

// Settle drops the holes that got an answer (answered, by the flow's
// source port and TTL), and the TTLs where every hole has been probed
// since the last answer there, and counts the round of probes probed.
func (p *Plan) Settle(answered func(sport uint16, ttl int) bool, probed int) {
	p.Retried.Rounds++
	p.Retried.Probes += probed
	for ttl, hs := range p.holes {
		before := len(hs)
		hs = slices.DeleteFunc(hs, func(sp uint16) bool { return answered(sp, ttl) })
		if len(hs) == before {
			p.dry[ttl] += p.sent[ttl]
			if p.dry[ttl] >= len(hs) {
				delete(p.holes, ttl) // a whole turn, nothing new: silent by configuration, or spent
			}
			continue
		}
		p.dry[ttl] = 0
		p.Retried.Answers += before - len(hs)
		p.holes[ttl] = hs
		if len(hs) == 0 {
			delete(p.holes, ttl)
		}
	}
}

// Run probes the plan's rounds, one a Round on clock, until nothing is
// left or patience is spent. send probes one round and says whether it
// was cut short; answered says which holes have answered since. Run
// reports whether the rounds were interrupted (by ctx or by send).
func (p *Plan) Run(ctx context.Context, clock probe.Clock, patience time.Duration, firstRepeat int,
	send func(probe.List) (stopped bool, err error), answered func(sport uint16, ttl int) bool) (bool, error) {
	deadline := clock.Now().Add(patience)
	tick, stop := clock.Ticker(Round)
	defer stop()
	for repeat := firstRepeat; !p.Done(); repeat++ {
		select {
		case <-ctx.Done():
			return true, nil
		case now := <-tick:
			if now.After(deadline) {
				return false, nil
			}
		}
		probes := p.Next(repeat)
		stopped, err := send(probes)
		if err != nil {
			return false, err
		}
		p.Settle(answered, len(probes))
		if stopped {
			return true, nil
		}
	}
	return false, nil
}
