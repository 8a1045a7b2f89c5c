package report

import (
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Look is a second look a trace can take before it settles (MDA-like:
// probe more where the evidence is thin). A forward hypothesis that is
// the verdict, or close to it, rests on the flows traced through one
// router; a fault there predicts that every flow crossing it that way
// fails, so the untraced flows that cross it (they answer from one of
// Addrs at TTL), traced too, test it where it is weakest: a few failing
// flows through a router no healthy traced flow happened to cross make a
// forward fault of a return one.
type Look struct {
	TTL   int
	Addrs []netip.Addr
}

// look is the Look at the forward place, among the hypotheses within the
// decisive ratio of the best and the tentative pair kept aside (whose
// forward half is a place to look), that the fewest traced flows cross:
// where the evidence is thinnest. nil when there is none: a return verdict
// no forward hypothesis comes close to needs none. Where every traced flow
// crosses the place (r1, or all the routers an unseen member may sit
// behind), the look is a wider sample of the range, which helped too,
// measured on the recorded traces (README, "A second look").
func (a *analysis) look(hs []Hypothesis) *Look {
	if len(hs) == 0 {
		return nil
	}
	var best *Look
	fewest := 0
	consider := func(h *Hypothesis) {
		if h == nil || h.Direction != DirectionForward {
			return
		}
		if l, n := a.lookAt(*h); l != nil && (best == nil || n < fewest) {
			best, fewest = l, n
		}
	}
	for _, h := range hs {
		if h.Score < hs[0].Score-decisive {
			break
		}
		consider(&h)
		consider(h.And)
	}
	if t := a.tentative; t != nil {
		consider(t)
		consider(t.And)
	}
	return best
}

// lookAt is where flows cross a forward hypothesis's place, and how many
// traced flows do: the router of a hop at its TTL; the router before a
// link, a next hop or an unseen member, a TTL earlier. nil when no
// answering router places it.
func (a *analysis) lookAt(h Hypothesis) (*Look, int) {
	ttl, routers := h.TTL-1, map[netip.Addr]bool{}
	switch h.Kind {
	case HypHop:
		ttl = h.TTL
		routers[a.routerOf(h.Addr)] = h.Addr.IsValid()
	case HypLink, HypNextHop:
		routers[a.routerOf(h.Addr)] = h.Addr.IsValid() && !h.Silent
	case HypMember:
		for _, b := range h.Behind {
			routers[a.routerOf(b)] = true
		}
	}
	addrs, crossing := map[netip.Addr]bool{}, 0
	for _, p := range a.paths {
		if ttl >= 1 && ttl < len(p) && p[ttl].answered() && routers[a.routerOf(p[ttl].addr)] {
			addrs[p[ttl].addr] = true
			crossing++
		}
	}
	if len(addrs) == 0 {
		return nil, 0
	}
	return &Look{TTL: ttl, Addrs: sortedAddrs(addrs)}, crossing
}

// Crosses reports whether an answer at the look's TTL is from its place.
func (l Look) Crosses(addr netip.Addr) bool {
	return addr.IsValid() && slices.Contains(l.Addrs, addr)
}

// Looked is the second look a trace took: where (Look), and the flows
// seen crossing there that it left untraced, by state. The flows it traced
// were picked by path, not by state, so they and the first pick's flows
// that cross there are weighed back apart from the others (WeighBack).
type Looked struct {
	Look
	Untraced Untraced
	// Picked counts the flows the look traced, and Unseen the untraced
	// ones it probed that gave no answer at its TTL, by state: a router
	// that rate-limits its errors answers few of the look's probes, so a
	// flow it did not see may well cross there (unseenCrossing). Unseen is
	// nil in traces recorded before the look counted them.
	Picked int
	Unseen *Untraced
	// Ports are the source ports of the flows it traced; nil in traces
	// recorded before it named them. They were probed after the first
	// pass, when routers that rate-limit their errors had earned answers
	// again, so their hops are not the first pass's (silentShare).
	Ports []uint16
}

// ports is the set of the look's flows, nil when none are named.
func (l *Looked) ports() map[uint16]bool {
	if l == nil || len(l.Ports) == 0 {
		return nil
	}
	out := make(map[uint16]bool, len(l.Ports))
	for _, p := range l.Ports {
		out[p] = true
	}
	return out
}

// crossed reports whether a traced flow crossed the look's place.
func (l *Looked) crossed(f FlowTrace) bool { return l != nil && l.CrossedBy(f.Hops) }

// stateCount counts traced flows by state (Flaky unused).
func stateCount(flows []FlowTrace) Untraced {
	var n Untraced
	for _, f := range flows {
		switch f.State {
		case hash.StateFail:
			n.Fail++
		case hash.StateOK:
			n.OK++
		}
	}
	return n
}

// weighStratum is what each traced flow of a stratum stands for, by state:
// its traced and untraced flows over its traced ones.
func weighStratum(traced Untraced, untraced counts) (fail, ok float64) {
	weight := func(traced int, untraced float64) float64 {
		if traced == 0 || untraced <= 0 {
			return 1
		}
		return (float64(traced) + untraced) / float64(traced)
	}
	return weight(traced.Fail, untraced.fail), weight(traced.OK, untraced.ok)
}

// counts are untraced flows by state, failing and healthy, where a
// stratum may hold a share of some.
type counts struct{ fail, ok float64 }

func countsOf(u Untraced) counts       { return counts{float64(u.Fail), float64(u.OK)} }
func (c counts) plus(d counts) counts  { return counts{c.fail + d.fail, c.ok + d.ok} }
func (c counts) minus(d counts) counts { return counts{c.fail - d.fail, c.ok - d.ok} }
func (c counts) total() float64        { return c.fail + c.ok }

// untracedStrata splits the untraced flows u between the look's place
// (in) and the rest (out): those it saw crossing there and left
// untraced, and the share of those it did not see at all that cross there
// (unseenCrossing), are in. Without a look every one is of the rest.
func (l *Looked) untracedStrata(traced []FlowTrace, u Untraced) (in, out counts) {
	if l == nil {
		return counts{}, countsOf(u)
	}
	in = countsOf(l.Untraced)
	rest := countsOf(u).minus(in)
	moved := l.unseenCrossing(traced, rest)
	return in.plus(moved), rest.minus(moved)
}

// unseenCrossing is how many of the rest's untraced flows cross the
// look's place though it did not see them: those that gave no answer at
// its TTL, by state in the share of the flows seen there that were seen
// at the place (a silence says nothing of the path where routers
// rate-limit their errors: missing at random). Seen there are the traced
// flows that answered at that TTL (its picks among them) and the untraced
// ones the look saw: left untraced at the place, the rest's others
// elsewhere. Traces recorded before the look counted its unseen flows
// (Unseen nil) move none.
func (l *Looked) unseenCrossing(traced []FlowTrace, rest counts) counts {
	if l.Unseen == nil {
		return counts{}
	}
	var seenThere, crossingThere []FlowTrace
	for _, f := range traced {
		if l.SeenBy(f.Hops) {
			seenThere = append(seenThere, f)
			if l.CrossedBy(f.Hops) {
				crossingThere = append(crossingThere, f)
			}
		}
	}
	unseen, left := countsOf(*l.Unseen), countsOf(l.Untraced)
	crossing := left.plus(countsOf(stateCount(crossingThere)))
	seen := left.plus(rest.minus(unseen)).plus(countsOf(stateCount(seenThere)))
	share := func(k, n float64) float64 {
		if n <= 0 {
			return 0
		}
		return k / n
	}
	return counts{unseen.fail * share(crossing.fail, seen.fail), unseen.ok * share(crossing.ok, seen.ok)}
}

// everywhere reports whether no flow was seen anywhere but at the look's
// place at its TTL (r1, say): every flow crosses it, those it did not see
// too, so the look was a wider sample of the range, not a stratum. The
// traced flows say so, and where the look counted its unseen flows, the
// untraced ones it saw (of the rest u, less those it saw crossing) too.
func (l *Looked) everywhere(traced []FlowTrace, u Untraced) bool {
	if slices.ContainsFunc(traced, func(f FlowTrace) bool { return l.SeenBy(f.Hops) && !l.CrossedBy(f.Hops) }) {
		return false
	}
	if l.Unseen == nil {
		return true
	}
	rest := countsOf(u).minus(countsOf(l.Untraced))
	return rest.total() <= countsOf(*l.Unseen).total()
}

// SeenBy reports whether a flow's hops got an answer at the look's TTL,
// from its place or elsewhere.
func (l Look) SeenBy(hops []TraceHop) bool {
	return l.TTL >= 1 && l.TTL <= len(hops) && hops[l.TTL-1].Addr.IsValid()
}

// CrossedBy reports whether a flow's hops cross the look's place: an
// answer at its TTL from one of its addresses.
func (l Look) CrossedBy(hops []TraceHop) bool {
	if l.TTL < 1 || l.TTL > len(hops) {
		return false
	}
	h := hops[l.TTL-1]
	return l.Crosses(h.Addr) || slices.ContainsFunc(h.Others, l.Crosses)
}
