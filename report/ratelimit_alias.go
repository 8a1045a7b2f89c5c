package report

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
)

// The rate-limit alias test, which a trace runs where its diagnosis cannot
// decide and the timestamp test (timestamp_alias.go) did not settle it:
// a router that rate-limits its ICMP errors keeps one budget for them per
// destination (Linux: a burst of 6, then one a second, toward each host),
// whichever of its addresses the errors come from. Spend the budget of the
// router answering from A, with a burst of probes that expire there, and
// one that expires where B answers right after goes unanswered if B is the
// same router's (after Vermeulen et al., "Alias Resolution Based on ICMP
// Rate Limiting", PAM 2020). It needs no route to the routers' addresses
// and works for IPv6 as for IPv4; it proves nothing where routers do not
// rate-limit, or limit more generously than the burst.
//
// A round (RateLimitRound) drains one address's router, the pivot A, and
// checks the others of its TTL. Each must answer a probe first (its
// control), a wait before the drain, so that a budget of its own that
// refills at least once in that time has a token again: its silence after
// the drain is then A's doing, not its own. A pair is one router only
// when draining each silences the other: a probe lost to background loss
// silences one round, rarely both, and a router that holds several of the
// checked addresses and spends its own budget on them cannot silence the
// pivot's router when roles swap (NextRound asks that second round).

const (
	// RateLimitDrain is how many probes a round sends to drain A: more
	// than Linux's burst of 6.
	RateLimitDrain = 8
	// rateLimitAddrs bounds the addresses of one TTL taken into rounds.
	rateLimitAddrs = 8
	// MaxRateLimitRounds bounds the rounds of one test (each takes about
	// the wait and a timeout), and MaxStageRounds those of one stage, so
	// that a stage of routers each its own, which proves nothing, leaves
	// rounds for the next.
	MaxRateLimitRounds = 12
	MaxStageRounds     = 6
)

// RateLimitStage is the addresses that answered at one TTL, most answers
// first, each with a flow whose probes expired there and were answered
// from it (Flows[i] for Addrs[i]).
type RateLimitStage struct {
	TTL   int
	Addrs []netip.Addr
	Flows []uint16 // source ports
}

// RateLimitRound is what one round saw: each drain probe's answer from the
// pivot in order, and each checked address's control and answer right
// after.
type RateLimitRound struct {
	TTL    int
	Pivot  netip.Addr
	Drain  []bool
	Checks []RateLimitCheck
}

// RateLimitCheck is one checked address of a round.
type RateLimitCheck struct {
	Addr          netip.Addr
	Control, Then bool
}

// Drained says the drain spent the pivot's budget: it answered, and then
// not its last two probes.
func (r RateLimitRound) Drained() bool {
	n := len(r.Drain)
	return n >= 3 && slices.Contains(r.Drain[:n-2], true) && !r.Drain[n-2] && !r.Drain[n-1]
}

// silenced lists the checked addresses the round found silent for want of
// the pivot's budget.
func (r RateLimitRound) silenced() []netip.Addr {
	var out []netip.Addr
	for _, c := range r.Checks {
		if r.Drained() && c.Control && !c.Then {
			out = append(out, c.Addr)
		}
	}
	return out
}

// RateLimitTest is what the rate-limit alias test found.
type RateLimitTest struct {
	Rounds   int // rounds run
	Drained  int // rounds whose drain spent the pivot's budget
	Silenced int // addresses found silent after a drain, over all rounds
	// Groups are the addresses found to be one router's, each pair of
	// them silenced both ways: two or more each, sorted, in order of
	// their first address.
	Groups [][]netip.Addr
}

// RateLimitStages are the stages the test may drain and check, in order:
// at the TTLs the leading hypotheses name (each one's and the next, where
// one router answering from several addresses would read as several),
// the addresses that answered most there, the target apart.
func RateLimitStages(t Trace) []RateLimitStage {
	var out []RateLimitStage
	for _, ttl := range leadingTTLs(t.Diagnosis.Hypotheses) {
		addrs, flow := answeringAt(t.Flows, ttl, t.Target.Addr())
		if len(addrs) < 2 {
			continue
		}
		st := RateLimitStage{TTL: ttl}
		for _, a := range addrs {
			// A flow stands for one address: its answers tell them apart.
			if len(st.Addrs) < rateLimitAddrs && !slices.Contains(st.Flows, flow[a]) {
				st.Addrs, st.Flows = append(st.Addrs, a), append(st.Flows, flow[a])
			}
		}
		out = append(out, st)
	}
	return out
}

// leadingTTLs are the TTLs of the two best hypotheses, and each one's next,
// in that order, once each.
func leadingTTLs(hs []Hypothesis) []int {
	var out []int
	for _, h := range hs[:min(len(hs), 2)] {
		for _, ttl := range []int{h.TTL, h.TTL + 1} {
			if ttl >= 1 && !slices.Contains(out, ttl) {
				out = append(out, ttl)
			}
		}
	}
	return out
}

// answeringAt lists the addresses that answered at ttl, most answers first,
// and for each the flow it answered most: what both alias tests ask about.
func answeringAt(flows []FlowTrace, ttl int, target netip.Addr) ([]netip.Addr, map[netip.Addr]uint16) {
	answers, flow, most := map[netip.Addr]int{}, map[netip.Addr]uint16{}, map[netip.Addr]int{}
	for _, f := range flows {
		for _, h := range f.Hops {
			if h.TTL != ttl || !h.Addr.IsValid() || h.Addr == target || h.Reached || h.Answers == 0 {
				continue
			}
			answers[h.Addr] += h.Answers
			if h.Answers > most[h.Addr] {
				most[h.Addr], flow[h.Addr] = h.Answers, f.Sport
			}
		}
	}
	addrs := slices.SortedFunc(maps.Keys(answers), func(x, y netip.Addr) int {
		return cmp.Or(cmp.Compare(answers[y], answers[x]), x.Compare(y))
	})
	return addrs, flow
}

// NextRound is the round to run at the stage after rounds: the pivot and
// the addresses to check, as indexes into Addrs; false when none is left.
// First the other way of a pair silenced one way; then the first address
// with pairs tested neither way, checking all of them but those already
// found one router's with it. A pivot whose drain did not take is not
// drained again (its router limits more generously than the burst, or
// not at all), and when two drains did not take and none did, the
// routers do not limit within reach: nothing is left. A check whose
// control went unanswered is asked once more.
func (s RateLimitStage) NextRound(rounds []RateLimitRound) (int, []int, bool) {
	drained, undrainable := 0, map[netip.Addr]bool{}
	for _, r := range rounds {
		if r.Drained() {
			drained++
		} else {
			undrainable[r.Pivot] = true
		}
	}
	if drained == 0 && len(undrainable) >= 2 {
		return 0, nil, false
	}
	found := JudgeRateLimit(rounds)
	open := func(x, y netip.Addr) bool { // x may be drained to check y
		return !undrainable[x] && !found.Together(x, y) && !found.tested(rounds, x, y) && attempts(rounds, x, y) < 2
	}
	for _, r := range rounds {
		for _, b := range r.silenced() {
			i, j := slices.Index(s.Addrs, b), slices.Index(s.Addrs, r.Pivot)
			if r.TTL == s.TTL && i >= 0 && j >= 0 && open(b, r.Pivot) {
				return i, []int{j}, true
			}
		}
	}
	for i, a := range s.Addrs {
		var checks []int
		for j, b := range s.Addrs {
			if i != j && open(a, b) && !found.tested(rounds, b, a) {
				checks = append(checks, j)
			}
		}
		if len(checks) > 0 {
			return i, checks, true
		}
	}
	return 0, nil, false
}

// tested says whether a round drained x, or an address found one router's
// with it, and checked y, whose control answered: a test of the pair,
// whichever its outcome.
func (t *RateLimitTest) tested(rounds []RateLimitRound, x, y netip.Addr) bool {
	return slices.ContainsFunc(rounds, func(r RateLimitRound) bool {
		return (r.Pivot == x || t.Together(r.Pivot, x)) && r.Drained() &&
			slices.ContainsFunc(r.Checks, func(c RateLimitCheck) bool { return c.Addr == y && c.Control })
	})
}

// attempts counts the rounds that drained x to check y.
func attempts(rounds []RateLimitRound, x, y netip.Addr) int {
	n := 0
	for _, r := range rounds {
		if r.Pivot == x && slices.ContainsFunc(r.Checks, func(c RateLimitCheck) bool { return c.Addr == y }) {
			n++
		}
	}
	return n
}

// JudgeRateLimit sums the rounds up and groups the pairs silenced both
// ways.
func JudgeRateLimit(rounds []RateLimitRound) *RateLimitTest {
	t := &RateLimitTest{Rounds: len(rounds)}
	silenced := map[[2]netip.Addr]bool{}
	for _, r := range rounds {
		if r.Drained() {
			t.Drained++
		}
		for _, b := range r.silenced() {
			t.Silenced++
			silenced[[2]netip.Addr{r.Pivot, b}] = true
		}
	}
	one := unionFind{}
	for p := range silenced {
		if silenced[[2]netip.Addr{p[1], p[0]}] {
			one.union(p[0], p[1])
		}
	}
	t.Groups = one.groups()
	return t
}

// Together says whether the test found a and b one router's.
func (t *RateLimitTest) Together(a, b netip.Addr) bool {
	for _, g := range t.Groups {
		if slices.Contains(g, a) && slices.Contains(g, b) {
			return true
		}
	}
	return false
}
