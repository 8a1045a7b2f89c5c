package report

import (
	"math"
	"net/netip"
)

// How many routers a stage has is read off the addresses that answer
// there, and routers differ in the address they answer from. Two readings
// of the whole fabric are carried, equally likely a priori:
//
//   - by router: every address (as diagnose.go groups them) is a router
//     (routers that answer from a router ID, or that grouping resolved);
//   - by link: every router shows one address per link toward the stage
//     before, as routers that answer from the interface an error arrives
//     or leaves by do, so a stage's addresses are a whole multiple of the
//     stage before's routers, read the same way stage by stage. Addresses
//     grouped into one router (a shared IP ID counter) are some of its
//     links: grouping may be partial, and one pair grouped must not hide
//     the others' reading.
//
// The reading is the fabric's, not one stage's: two addresses behind a
// stage read as two routers are, by link, one router with two links, and
// its stage is a member narrower. The link reading predicts how many
// addresses the healthy flows see: all of each whole multiple, less one
// where a return fault at the stage before loses one link's errors with
// its answers (the routers beyond it send their errors back over the bad
// member, or the dead link, and from that link's address). How likely the
// count seen is under a hypothesis (each healthy flow seeing one of the
// addresses at random) weighs the link reading for it; the router reading
// predicts no count. A hypothesis that blames one member or link of a
// stage is scored under both readings, each by the share of flows it
// fails there; the rest by their fitted share, under the readings they
// fit. An unseen forward member is a member without addresses in the
// reading, so the stages beyond are read with it.

// aliasMode is a reading of the routers' addresses.
type aliasMode int

const (
	byRouter aliasMode = iota
	byLink
	aliasModes
)

// alter is what a hypothesis changes in the reading: an unseen member at
// position unseen (a router without addresses), and a link's addresses
// it loses at position short (0: none).
type alter struct{ unseen, short int }

// fabricReading is every position's width under both readings, for one
// hypothesis, and fit, the probability of the addresses seen under the
// link reading (each stage's whole multiple of addresses, less those the
// hypothesis loses, sampled by the healthy flows there; 1 for the router
// reading, which predicts no count).
type fabricReading struct {
	router, link []int // by position; 0 when no healthy flow gets there
	fit          float64
}

// reading reads every position's width both ways for a hypothesis that
// alters it so (cached).
func (a *analysis) reading(h alter) *fabricReading {
	if r, ok := a.readings[h]; ok {
		return r
	}
	deepest := 0
	for _, i := range a.okFlows() {
		deepest = max(deepest, len(a.paths[i]))
	}
	r := &fabricReading{router: make([]int, deepest+1), link: make([]int, deepest+1), fit: 1}
	prevSilent := 0
	for t := 1; t <= deepest; t++ {
		answering, silent := a.stageCount(t)
		unseen := 0
		if t == h.unseen {
			unseen = 1 // a member without addresses, for this reading
		}
		n := a.answeringFlows(t)
		routerSilent := a.silentMembers(t, answering, silent, n)
		r.router[t], r.link[t] = answering+routerSilent+unseen, answering+routerSilent+unseen
		silent = routerSilent
		// Addresses grouped into routers are one router's links, read by
		// link too, unless a group has more than one per link.
		addrs, widest := a.stageGroups(t)
		if prev := r.link[t-1]; t >= 2 && prev > 1 && answering > 0 && widest <= prev {
			routers, p := perLink(addrs, n, []int{prev, prev - prevSilent}, t == h.short)
			silent = a.silentMembers(t, routers, silent, n)
			r.link[t] = routers + silent + unseen
			r.fit *= p
		}
		prevSilent = silent + unseen
	}
	if a.readings == nil {
		a.readings = map[alter]*fabricReading{}
	}
	a.readings[h] = r
	return r
}

// perLink reads the answering addresses of a stage, seen by n healthy
// flows, as routers with one address per link toward befores routers (the
// stage before, its members without addresses counted or not, whichever
// fits better): routers = K/b for the least whole multiple K of b that is
// not below answering, and p, the probability that n flows see exactly
// answering of K addresses (each flow one at random), or of K-1 where
// lost (the hypothesis loses one link's: its errors never get out).
func perLink(answering, n int, befores []int, lost bool) (routers int, p float64) {
	routers, p = answering, 0
	for _, b := range befores {
		if b < 1 {
			continue
		}
		k := (answering + b - 1) / b * b
		q := seenExactly(answering, k, n)
		if lost && k-1 >= answering {
			q = max(q, seenExactly(answering, k-1, n))
		}
		if q > p {
			routers, p = k/b, q
		}
	}
	return routers, p
}

// seenExactly is the probability that n draws from k equally likely
// addresses see exactly m of them: the number missed taken as Poisson
// with mean k (1-1/k)^n.
func seenExactly(m, k, n int) float64 {
	if m > k || k < 1 {
		return 0
	}
	lambda := float64(k) * math.Pow(1-1/float64(k), float64(n))
	d := k - m
	lg, _ := math.Lgamma(float64(d + 1))
	return math.Exp(-lambda + float64(d)*math.Log(max(lambda, 1e-300)) - lg)
}

// silentMembers is how many members the silent hops at position t stand
// for, where healthy flows cross them: as many as take the share of
// healthy flows one of the answering members (routers, as read, that ans
// healthy flows answer from) does there, at least one.
func (a *analysis) silentMembers(t, answering, silent, ans int) int {
	if silent == 0 || answering == 0 {
		return silent
	}
	crossing := 0
	for i := range a.paths {
		if a.crossesSilent(i, t) {
			crossing++
		}
	}
	return max(1, int(math.Round(float64(crossing)*float64(answering)/float64(max(ans, 1)))))
}

// answeringFlows counts the healthy flows that answer at position t.
func (a *analysis) answeringFlows(t int) int {
	n := 0
	for _, i := range a.okFlows() {
		if p := a.paths[i]; t < len(p) && p[t].answered() {
			n++
		}
	}
	return n
}

// width is position t's width under reading m; 0 when no healthy flow
// gets there.
func (r *fabricReading) width(t int, m aliasMode) int {
	if t < 0 || t >= len(r.router) {
		return 0
	}
	if m == byLink {
		return r.link[t]
	}
	return r.router[t]
}

// stageGroups counts the addresses healthy flows answer from at position
// t, and the most of them grouped into one router.
func (a *analysis) stageGroups(t int) (addrs, widest int) {
	groups := map[netip.Addr]map[netip.Addr]bool{} // router -> its addresses
	for _, i := range a.okFlows() {
		if p := a.paths[i]; t < len(p) && p[t].answered() {
			r := a.routerOf(p[t].addr)
			if groups[r] == nil {
				groups[r] = map[netip.Addr]bool{}
			}
			if !groups[r][p[t].addr] {
				groups[r][p[t].addr] = true
				addrs++
			}
			widest = max(widest, len(groups[r]))
		}
	}
	return addrs, widest
}

// shares is what a hypothesis that blames one member (or link) of a stage
// predicts: the widths (1/width of the flows fail) under each reading,
// averaged within a reading, and how it alters the reading.
type shares struct {
	widths [aliasModes][]int
	alter  alter
}

func (s shares) any() bool { return len(s.widths[byRouter]) > 0 || len(s.widths[byLink]) > 0 }

// modeWeights are the readings' weights for a hypothesis whose link
// reading fits the addresses seen with probability fit: one half each,
// the link half by how well it fits.
func modeWeights(fit float64) [aliasModes]float64 {
	return [aliasModes]float64{0.5, 0.5 * fit}
}

// mixture is log sum over readings of weight x mean over the reading's
// widths of exp(ll(1/width)). A hypothesis without widths has its fitted
// likelihood, weighed by the readings it fits.
func mixture(weights [aliasModes]float64, widths [aliasModes][]int, fitted float64, ll func(q float64) float64) float64 {
	return byReading(weights, func(m aliasMode) []float64 {
		if len(widths[byRouter])+len(widths[byLink]) == 0 {
			return []float64{fitted}
		}
		lls := make([]float64, len(widths[m]))
		for k, width := range widths[m] {
			lls[k] = ll(1 / float64(width))
		}
		return lls
	})
}

// byReading is log sum over the readings of weight x mean of exp(lls(m)),
// the log-likelihoods a hypothesis has under reading m (none: it cannot be
// read so); -Inf under none.
func byReading(weights [aliasModes]float64, lls func(m aliasMode) []float64) float64 {
	var comps []float64
	for m, w := range weights {
		if w == 0 {
			continue
		}
		if l := lls(aliasMode(m)); len(l) > 0 {
			comps = append(comps, math.Log(w)+logMeanExp(l))
		}
	}
	if len(comps) == 0 {
		return math.Inf(-1)
	}
	return logSumExp(comps)
}

// logSumExp is log(sum(exp(xs))), computed without overflow.
func logSumExp(xs []float64) float64 {
	return logMeanExp(xs) + math.Log(float64(len(xs)))
}
