package report

import (
	"math/rand/v2"
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
)

// A single forward fault sits on one hop or one link. It cannot kill the
// flows of every member of an ECMP stage while healthy flows of those same
// members go on to the one router (or the destination) behind the stage.
// That pattern is what a return fault looks like where routers hash their
// own ICMP errors like the offending flow (plain Linux, FRR, SONiC): the
// time-exceeded messages of the routers behind the bad return member ride
// it back and are lost, so the failing flows go silent at the same depth,
// whatever forward member they took. spreadReturn finds those flows.

// spreadGroup is the failing flows that go silent after one stage.
type spreadGroup struct {
	pos     int          // their last answer is at this position (TTL)
	flows   []int        // failing flows, by index
	behind  string       // the one router (or "the destination") healthy flows reach next
	p       float64      // homogeneity p-value against the healthy flows' split
	members []netip.Addr // the routers the failing flows last answered from, sorted
	// atSilent counts failing flows added because they die right at a
	// silent hop that healthy flows cross (the bad member itself).
	atSilent int
}

// spreadAlpha is the level below which the failing flows' split over a
// stage's members is taken to differ from the healthy flows' split.
const spreadAlpha = hash.DefaultAlpha

// spreadReturn splits forward fates into those a return fault explains
// better (grouped by stage) and the rest. A spread group counts only when
// a router silent for every flow, that healthy flows cross and go on
// after, sits at or before its stage: what a member that drops everything
// toward the client looks like when it forwards toward the server (it
// cannot send its own time-exceeded back either). Without it, an unseen
// forward member next to the one router healthy flows reach explains the
// deaths as well. With it, the failing flows that die right at that silent
// hop are the same return fault's too.
func (a *analysis) spreadReturn(fwd []fate) (groups []spreadGroup, rest []fate) {
	byPos := map[int][]fate{}
	for _, f := range fwd {
		if f.kind != fateForward {
			rest = append(rest, f)
			continue
		}
		t0 := lastAnswer(a.paths[f.flow])
		byPos[t0] = append(byPos[t0], f)
	}
	positions := make([]int, 0, len(byPos))
	for pos := range byPos {
		positions = append(positions, pos)
	}
	slices.Sort(positions)
	for _, pos := range positions {
		fs := byPos[pos]
		g, ok := a.spreadAt(pos, fs)
		if !ok || !a.badMemberSeen(pos) {
			rest = append(rest, fs...)
			continue
		}
		groups = append(groups, g)
	}
	if len(groups) == 0 {
		return nil, rest
	}
	var left []fate
	for _, f := range rest {
		if f.kind == fateForward && a.diesAtSilentCrossed(f.flow) {
			groups[0].flows = append(groups[0].flows, f.flow)
			groups[0].atSilent++
			continue
		}
		left = append(left, f)
	}
	return groups, left
}

// badMemberSeen reports whether a stage at or before pos looks as if one
// of its members is the bad return member: healthy flows cross a hop there
// that is silent and go on after it, and the share of failing flows fits
// one bad member among the stage's (the routers answering at that TTL and
// the silent one): 1/M lies in the 99% Clopper-Pearson interval of the
// failing share. A silent router elsewhere, with a failing share that
// fits another stage's width, is not evidence of this fault.
func (a *analysis) badMemberSeen(pos int) bool {
	failing, traced := 0, 0
	for _, f := range a.flows {
		switch f.State {
		case hash.StateFail:
			failing++
			traced++
		case hash.StateOK:
			traced++
		}
	}
	lo, hi := hash.ClopperPearson(failing, traced, 0.99)
	for t := 1; t <= pos; t++ {
		if !a.silentCrossedAt(t) {
			continue
		}
		members := map[netip.Addr]bool{}
		for _, p := range a.paths {
			if t < len(p) && p[t].answered() {
				members[a.routerOf(p[t].addr)] = true
			}
		}
		if share := 1 / float64(len(members)+1); share >= lo && share <= hi {
			return true
		}
	}
	return false
}

// silentCrossedAt reports whether some healthy flow crosses a silent hop at
// TTL t and answers after it: a router there that never answers. Where the
// routers rate-limit their answers, silence there is their missing
// answers, not such a router (ratelimit.go).
func (a *analysis) silentCrossedAt(t int) bool {
	if a.rateLimited[t] {
		return false
	}
	for i := range a.paths {
		if a.crossesSilent(i, t) {
			return true
		}
	}
	return false
}

// crossesSilent reports whether flow i is healthy, silent at TTL t and
// answers after it.
func (a *analysis) crossesSilent(i, t int) bool {
	p := a.paths[i]
	return a.flows[i].State == hash.StateOK && t < len(p) && !p[t].answered() && !p[t].reached && nextRouter(a, p, t) != ""
}

// diesAtSilentCrossed reports whether a failing flow goes silent for good
// at a silent hop that healthy flows cross and go on after.
func (a *analysis) diesAtSilentCrossed(flow int) bool {
	p := a.paths[flow]
	t0 := lastAnswer(p)
	if t0+1 >= len(p) {
		return false
	}
	for _, o := range a.healthy[p[t0+1].id] {
		if nextRouter(a, a.paths[o.flow], o.pos) != "" {
			return true
		}
	}
	return false
}

// lastAnswer is the position of a path's last answering router; 0 for none.
func lastAnswer(p []pnode) int {
	t0 := 0
	for pos, n := range p {
		if n.answered() {
			t0 = pos
		}
	}
	return t0
}

// spreadAt tests one stage: the failing flows whose last answer is at pos.
func (a *analysis) spreadAt(pos int, fs []fate) (spreadGroup, bool) {
	g := spreadGroup{pos: pos}
	failing := map[netip.Addr]int{}
	for _, f := range fs {
		g.flows = append(g.flows, f.flow)
		failing[a.routerOf(a.paths[f.flow][pos].addr)]++
	}
	healthy := map[netip.Addr]int{}
	behind := map[string]bool{}
	lastHop := true // every healthy flow's next answer is the hop before the destination
	for i, p := range a.paths {
		if a.flows[i].State != hash.StateOK || pos >= len(p) || !p[pos].answered() {
			continue
		}
		healthy[a.routerOf(p[pos].addr)]++
		next, at := nextAnswerAt(a, p, pos)
		if next != "" {
			behind[next] = true
		}
		lastHop = lastHop && at > 0 && at+1 < len(p) && p[at+1].reached
	}
	for m := range failing {
		if healthy[m] == 0 {
			return g, false // a member no healthy flow crosses: not this pattern
		}
		g.members = append(g.members, m)
	}
	slices.SortFunc(g.members, netip.Addr.Compare)
	// One router behind the stage, or the routers right before the
	// destination (the last hop, which answers from a different address
	// per flow where errors leave by the flow's return link).
	switch {
	case len(g.members) < 2 || len(behind) == 0:
		return g, false
	case len(behind) == 1:
		for b := range behind {
			g.behind = b
		}
	case lastHop:
		g.behind = "the hop before the destination"
	default:
		return g, false
	}
	g.p = homogeneity(failing, healthy)
	return g, g.p >= spreadAlpha
}

// nextRouter is the router (or "the destination") a path answers from next
// after pos; "" when it never answers again.
func nextRouter(a *analysis, p []pnode, pos int) string {
	r, _ := nextAnswerAt(a, p, pos)
	return r
}

// nextAnswerAt is nextRouter and its position.
func nextAnswerAt(a *analysis, p []pnode, pos int) (string, int) {
	for q := pos + 1; q < len(p); q++ {
		switch n := p[q]; {
		case n.reached:
			return "the destination", q
		case n.answered():
			return a.routerOf(n.addr).String(), q
		}
	}
	return "", 0
}

// homogeneity is the p-value of a permutation test (chi-square statistic,
// fixed margins) that the failing and healthy flows split over the members
// alike. Deterministic: the permutations come from a fixed seed.
func homogeneity(failing, healthy map[netip.Addr]int) float64 {
	var members []netip.Addr
	for m := range healthy {
		members = append(members, m)
	}
	slices.SortFunc(members, netip.Addr.Compare)
	var labels []int // one member index per flow, failing first
	nf := 0
	for k, m := range members {
		for range failing[m] {
			labels = append(labels, k)
			nf++
		}
	}
	for k, m := range members {
		for range healthy[m] {
			labels = append(labels, k)
		}
	}
	stat := func(l []int) float64 {
		f, t := make([]float64, len(members)), make([]float64, len(members))
		for i, k := range l {
			t[k]++
			if i < nf {
				f[k]++
			}
		}
		share := float64(nf) / float64(len(l))
		x := 0.0
		for k := range members {
			e := t[k] * share
			if e > 0 {
				x += (f[k] - e) * (f[k] - e) / e
			}
		}
		return x
	}
	observed := stat(labels)
	rng := rand.New(rand.NewPCG(0x5eed, 0xecf))
	const rounds = 999
	atLeast := 0
	perm := slices.Clone(labels)
	for range rounds {
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if stat(perm) >= observed-1e-9 {
			atLeast++
		}
	}
	return float64(atLeast+1) / float64(rounds+1)
}
