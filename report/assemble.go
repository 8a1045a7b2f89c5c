package report

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
)

// Hops gathers TTL-limited results per flow and TTL as they come. It keeps
// counts and one answer per answering address, not every result, so a
// long trace costs memory by flows x TTLs.
type Hops struct {
	at     map[hopKey]*hopAcc
	maxTTL map[uint16]int
	seq    int // arrival order, for ties
}

type hopKey struct {
	sport uint16
	ttl   int
}

type hopAcc struct {
	probes, answers int
	addrs           map[netip.Addr]*addrAcc
	ids             []IDSample // at most one per probe at this hop
}

// addrAcc is one address's answers at one hop: how many, and the first
// (the first that came from the destination itself, if any).
type addrAcc struct {
	count    int
	first    probe.Result
	seq      int
	answered bool
}

// NewHops is an empty hop record.
func NewHops() *Hops {
	return &Hops{at: map[hopKey]*hopAcc{}, maxTTL: map[uint16]int{}}
}

// Add records one TTL-limited result; others are ignored.
func (h *Hops) Add(r probe.Result) {
	if r.TTL == 0 || r.Outcome == probe.SendFailed {
		return
	}
	k := hopKey{r.Tuple.SrcPort, int(r.TTL)}
	acc := h.at[k]
	if acc == nil {
		acc = &hopAcc{addrs: map[netip.Addr]*addrAcc{}}
		h.at[k] = acc
	}
	acc.probes++
	h.maxTTL[k.sport] = max(h.maxTTL[k.sport], k.ttl)
	if r.Outcome != probe.Answered && r.Outcome != probe.Unreachable {
		return
	}
	acc.answers++
	if r.IPID != 0 && r.Outcome == probe.Unreachable {
		acc.ids = append(acc.ids, IDSample{Addr: r.From, At: r.Sent.Add(r.RTT), ID: r.IPID, TTL: r.ReplyTTL})
	}
	h.seq++
	a := acc.addrs[r.From]
	if a == nil {
		a = &addrAcc{first: r, seq: h.seq}
		acc.addrs[r.From] = a
	}
	a.count++
	if r.Outcome == probe.Answered && !a.answered {
		a.first, a.seq, a.answered = r, h.seq, true
	}
}

// TraceFlows builds one FlowTrace per flow from the flow's judged
// end-to-end result and its TTL-limited results.
func TraceFlows(endToEnd []hash.Judged, hops *Hops) []FlowTrace {
	flows := map[uint16]*FlowTrace{}
	for _, j := range endToEnd {
		flows[j.Tuple.SrcPort] = &FlowTrace{Sport: j.Tuple.SrcPort, State: j.State, Sent: j.Sent, Received: j.Received}
	}
	for sport := range hops.maxTTL {
		if flows[sport] == nil {
			flows[sport] = &FlowTrace{Sport: sport, State: hash.StateError}
		}
	}
	out := make([]FlowTrace, 0, len(flows))
	for sport, f := range flows {
		f.Hops = hops.Path(sport)
		f.ReachedTTL = ReachedTTL(f.Hops)
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b FlowTrace) int { return cmp.Compare(a.Sport, b.Sport) })
	return out
}

// Path is one flow's hops, TTL by TTL, up to the destination's answer
// (past it there is nothing to map); nil for a flow never probed.
func (h *Hops) Path(sport uint16) []TraceHop {
	var out []TraceHop
	for ttl := 1; ttl <= h.maxTTL[sport]; ttl++ {
		hop := h.hopAt(sport, ttl)
		out = append(out, hop)
		if hop.Reached {
			break
		}
	}
	return out
}

// ReachedTTL is the TTL at which hops reached the destination, 0 if none.
func ReachedTTL(hops []TraceHop) int {
	if n := len(hops); n > 0 && hops[n-1].Reached {
		return hops[n-1].TTL
	}
	return 0
}

// hopAt summarises the answers at one TTL of one flow. The destination's
// own answer wins; otherwise the address that answered most often (the
// earliest on a tie), with the others listed.
func (h *Hops) hopAt(sport uint16, ttl int) TraceHop {
	acc := h.at[hopKey{sport, ttl}]
	hop := TraceHop{TTL: ttl}
	if acc == nil {
		return hop
	}
	hop.Probes, hop.Answers = acc.probes, acc.answers
	var best *addrAcc
	for _, a := range acc.addrs {
		if best == nil || better(a, best) {
			best = a
		}
	}
	if best == nil {
		return hop
	}
	r := best.first
	hop.Addr, hop.RTT, hop.Reached = r.From, r.RTT, best.answered
	if !hop.Reached {
		hop.ICMPType, hop.ICMPCode, hop.MPLS = r.ICMPType, r.ICMPCode, r.MPLS
	}
	for addr := range acc.addrs {
		if addr != hop.Addr {
			hop.Others = append(hop.Others, addr)
		}
	}
	slices.SortFunc(hop.Others, netip.Addr.Compare)
	hop.IDs = slices.Clone(acc.ids)
	slices.SortStableFunc(hop.IDs, func(x, y IDSample) int { return x.At.Compare(y.At) })
	return hop
}

func better(a, b *addrAcc) bool {
	switch {
	case a.answered != b.answered:
		return a.answered
	case a.count != b.count:
		return a.count > b.count
	}
	return a.seq < b.seq
}

// HopsAway estimates how many hops away the target is from the TTL one of
// its answers arrived with, assuming it started from 64, 128 or 255: the
// smallest of those that is not below what arrived. 0 when unknown.
func HopsAway(replyTTL uint8) int {
	if replyTTL == 0 {
		return 0
	}
	return initialTTL(replyTTL) - int(replyTTL) + 1
}

// initialTTL is the TTL an answer most likely left with: the least of 64,
// 128 and 255 not below what arrived.
func initialTTL(ttl uint8) int {
	for _, guess := range []int{64, 128} {
		if int(ttl) <= guess {
			return guess
		}
	}
	return 255
}

// Answered reports whether a router or the destination answered flow
// sport at ttl.
func (h *Hops) Answered(sport uint16, ttl int) bool {
	acc := h.at[hopKey{sport, ttl}]
	return acc != nil && acc.answers > 0
}
