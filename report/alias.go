package report

import (
	"maps"
	"net/netip"
	"slices"
	"time"
)

// Aliases by a shared IP ID counter (after MIDAR's monotonic bounds test,
// simplified to what one trace collects). Many routers take the IPv4
// identification of every packet they originate from one counter,
// whatever address they send it from. The answers of two addresses of such
// a router, merged in arrival order, count up as one sequence. Two routers'
// counters, or the per-destination-and-source counters Linux keeps (one
// per address of one router), interleave out of order: their offsets are
// random, and the sequences drift apart as they are sampled. Only a
// positive finding is used: addresses not shown to share a counter may
// still be one router's.
//
// Answers whose identification copies the probe's are dropped when they
// are received (probe.replyIPID); an identification of 0 is none.

const (
	// aliasMinSamples is the fewest answers an address needs to be tested.
	aliasMinSamples = 3
	// aliasMaxStep bounds the counter's advance between two answers in a
	// row: far below half the space, so a wrap is never taken for a step.
	aliasMaxStep = 1 << 12
	// aliasReorder is how close two arrivals may be and still have been
	// sent in the other order (the errors take paths of their own).
	aliasReorder = 500 * time.Microsecond
	// aliasMaxAddrs bounds the addresses tested at one TTL (pairs grow as
	// the square).
	aliasMaxAddrs = 512
	// aliasMaxWindow is the widest offset window (see offsetWindow) that
	// still counts as one counter: two counters of their own pass only
	// if their offset falls in it (a chance of 4 in 65536) and their steps
	// interlock at every pass as well (TestSharedCountersNoFalseAliases
	// measures it).
	aliasMaxWindow = 4
)

// idSeries is one address's answers, in arrival order.
type idSeries []IDSample

// sharedCounters returns the groups of addresses that answered at the same
// TTL from one counter, each of at least two addresses, sorted. Only the
// flows' forward hops are read: a responder's reverse traces run on
// another host's clock.
func sharedCounters(flows []FlowTrace) [][]netip.Addr {
	series := map[netip.Addr]idSeries{}
	byTTL := map[int]map[netip.Addr]bool{}
	for _, f := range flows {
		for _, h := range f.Hops {
			for _, s := range h.IDs {
				series[s.Addr] = append(series[s.Addr], s)
				if byTTL[h.TTL] == nil {
					byTTL[h.TTL] = map[netip.Addr]bool{}
				}
				byTTL[h.TTL][s.Addr] = true
			}
		}
	}
	for a, s := range series {
		series[a] = inArrivalOrder(s)
	}
	u := unionFind{}
	for _, ttl := range slices.Sorted(maps.Keys(byTTL)) { // in order: the result may not depend on a map's
		set := byTTL[ttl]
		addrs := counterLike(set, series)
		if len(addrs) > aliasMaxAddrs {
			continue
		}
		for i, x := range addrs {
			for _, y := range addrs[i+1:] {
				if oneRouter(series[x], series[y], x) {
					u.union(x, y)
				}
			}
		}
		attachFew(u, set, series)
	}
	return verifiedGroups(u, series)
}

// oneRouter reports whether x's answers and the others', merged, are one
// counter's by the offset window.
func oneRouter(xs, others idSeries, x netip.Addr) bool {
	w := offsetWindow(inArrivalOrder(slices.Concat(xs, others)), x)
	return w > 0 && w <= aliasMaxWindow
}

// attachFew tests the addresses of set with two answers, too few to be
// tested in pairs, against the groups found among the others: a group's
// answers are many, so two answers that fall into its gaps, where
// another counter's would seldom both fall, still tell (one would not:
// any number falls into some gap). An address that fits two groups joins
// neither.
func attachFew(u unionFind, set map[netip.Addr]bool, series map[netip.Addr]idSeries) {
	groups := map[netip.Addr]idSeries{} // by root, the group's answers
	var few []netip.Addr
	for _, a := range slices.SortedFunc(maps.Keys(set), netip.Addr.Compare) {
		switch _, grouped := u[a]; {
		case grouped:
			r := u.find(a)
			groups[r] = append(groups[r], series[a]...)
		case len(series[a]) >= 2 && len(series[a]) < aliasMinSamples && oneCounter(series[a]):
			few = append(few, a)
		}
	}
	for _, a := range few {
		var fits []netip.Addr
		for r, g := range groups {
			if oneRouter(series[a], g, a) {
				fits = append(fits, r)
			}
		}
		if len(fits) == 1 {
			u.union(a, fits[0])
		}
	}
}

// counterLike lists, sorted, the addresses of set whose own answers count
// up like a counter, with enough of them to test.
func counterLike(set map[netip.Addr]bool, series map[netip.Addr]idSeries) []netip.Addr {
	var out []netip.Addr
	for a := range set {
		if s := series[a]; len(s) >= aliasMinSamples && oneCounter(s) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// verifiedGroups turns the union into groups, keeping only those whose
// answers, all merged, still count up as one counter: two pairs that each
// pass must not join two routers through a chance pass.
func verifiedGroups(u unionFind, series map[netip.Addr]idSeries) [][]netip.Addr {
	var out [][]netip.Addr
	for _, g := range u.groups() {
		var all idSeries
		for _, x := range g {
			all = append(all, series[x]...)
		}
		if oneCounter(inArrivalOrder(all)) {
			out = append(out, g)
		}
	}
	return out
}

// oneCounter reports whether answers in arrival order are one counter's:
// each identification a step of 1 to aliasMaxStep past the one before,
// from routers that start from the same TTL.
func oneCounter(s idSeries) bool {
	for i := 1; i < len(s); i++ {
		if !counterStep(s[i-1], s[i]) {
			return false
		}
	}
	return true
}

func counterStep(prev, cur IDSample) bool {
	step := cur.ID - prev.ID
	return step != 0 && step <= aliasMaxStep && initialTTL(cur.TTL) == initialTTL(prev.TTL)
}

// offsetWindow tests two addresses' answers, merged in arrival order, for
// one counter: 0 when they are not one counter's, else how many offsets
// of the second address's identifications against the first's (x's) would
// keep them so. Two counters of their own, at a random offset, merge as
// well with a chance of at most window/65536 (less: their steps must
// interlock too). Each pass from one address to the other narrows the
// window, so it takes passes both ways.
func offsetWindow(merged idSeries, x netip.Addr) int {
	if !oneCounter(merged) {
		return 0
	}
	lo, hi := -(1 << 15), 1<<15
	toY, toX := false, false
	for i := 1; i < len(merged); i++ {
		prev, cur := merged[i-1], merged[i]
		step := int(cur.ID - prev.ID)
		switch {
		case prev.Addr == x && cur.Addr != x: // step + offset must be a step
			lo, hi, toY = max(lo, 1-step), min(hi, aliasMaxStep-step), true
		case prev.Addr != x && cur.Addr == x: // step - offset must be
			lo, hi, toX = max(lo, step-aliasMaxStep), min(hi, step-1), true
		}
	}
	if !toY || !toX {
		return 0
	}
	return hi - lo + 1
}

// inArrivalOrder sorts answers by arrival, and those that arrived within
// aliasReorder of each other by identification: they may have been sent
// in either order.
func inArrivalOrder(s idSeries) idSeries {
	s = slices.Clone(s)
	slices.SortStableFunc(s, func(a, b IDSample) int { return a.At.Compare(b.At) })
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].At.Sub(s[j-1].At) < aliasReorder && s[j-1].ID-s[j].ID < aliasMaxStep && s[j-1].ID != s[j].ID; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}
