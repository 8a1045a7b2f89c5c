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
func weighStratum(traced, untraced Untraced) (fail, ok float64) {
	weight := func(traced, untraced int) float64 {
		if traced == 0 || untraced <= 0 {
			return 1
		}
		return float64(traced+untraced) / float64(traced)
	}
	return weight(traced.Fail, untraced.Fail), weight(traced.OK, untraced.OK)
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
