package report

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
)

// TraceFlows builds one FlowTrace per flow from the flow's end-to-end
// results (probes without a TTL limit) and its TTL-limited results.
func TraceFlows(endToEnd, ttlLimited []probe.Result) []FlowTrace {
	flows := map[uint16]*FlowTrace{}
	flow := func(sport uint16) *FlowTrace {
		f, ok := flows[sport]
		if !ok {
			f = &FlowTrace{Sport: sport}
			flows[sport] = f
		}
		return f
	}
	for _, r := range endToEnd {
		f := flow(r.Tuple.SrcPort)
		if r.Outcome == probe.SendFailed {
			continue
		}
		f.Sent++
		if r.Outcome == probe.Answered {
			f.Received++
		}
	}

	type hopKey struct {
		sport uint16
		ttl   int
	}
	answers := map[hopKey][]probe.Result{}
	probes := map[hopKey]int{}
	maxTTL := map[uint16]int{}
	for _, r := range ttlLimited {
		if r.TTL == 0 || r.Outcome == probe.SendFailed {
			continue
		}
		flow(r.Tuple.SrcPort)
		k := hopKey{r.Tuple.SrcPort, int(r.TTL)}
		probes[k]++
		maxTTL[k.sport] = max(maxTTL[k.sport], k.ttl)
		if r.Outcome == probe.Answered || r.Outcome == probe.Unreachable {
			answers[k] = append(answers[k], r)
		}
	}

	out := make([]FlowTrace, 0, len(flows))
	for sport, f := range flows {
		f.State = hash.Classify(f.Sent, f.Received)
		for ttl := 1; ttl <= maxTTL[sport]; ttl++ {
			k := hopKey{sport, ttl}
			h := hopFrom(ttl, probes[k], answers[k])
			f.Hops = append(f.Hops, h)
			if h.Reached {
				f.ReachedTTL = ttl
				break // past the destination there is nothing to map
			}
		}
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b FlowTrace) int { return cmp.Compare(a.Sport, b.Sport) })
	return out
}

// hopFrom summarises the answers at one TTL of one flow. The destination's
// own answer wins; otherwise the address that answered most often, with the
// others listed.
func hopFrom(ttl, sent int, answers []probe.Result) TraceHop {
	h := TraceHop{TTL: ttl, Probes: sent, Answers: len(answers)}
	if len(answers) == 0 {
		return h
	}
	seen := map[netip.Addr]int{}
	for _, a := range answers {
		seen[a.From]++
	}
	best := answers[0]
	for _, a := range answers[1:] {
		switch {
		case a.Outcome == probe.Answered && best.Outcome != probe.Answered,
			a.Outcome == best.Outcome && seen[a.From] > seen[best.From]:
			best = a
		}
	}
	h.Addr, h.RTT, h.Reached = best.From, best.RTT, best.Outcome == probe.Answered
	if !h.Reached {
		h.ICMPType, h.ICMPCode, h.MPLS = best.ICMPType, best.ICMPCode, best.MPLS
	}
	for addr := range seen {
		if addr != h.Addr {
			h.Others = append(h.Others, addr)
		}
	}
	slices.SortFunc(h.Others, netip.Addr.Compare)
	return h
}

// DestinationTTL estimates how many hops away the target is from the TTL
// its answers arrived with, assuming it started from 64, 128 or 255: the
// smallest of those that is not below what arrived. 0 when unknown.
func DestinationTTL(results []probe.Result) int {
	best := 0
	for _, r := range results {
		if r.Outcome != probe.Answered || r.ReplyTTL == 0 || r.Kind == probe.KindICMPEcho {
			continue
		}
		initial := 255
		for _, guess := range []int{64, 128} {
			if int(r.ReplyTTL) <= guess {
				initial = guess
				break
			}
		}
		best = max(best, initial-int(r.ReplyTTL)+1)
	}
	return best
}
