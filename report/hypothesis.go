package report

// Diagnosis as hypothesis testing (boolean network tomography).
//
// Every single fault that could fail the traced flows is a hypothesis:
//
//   - forward, after a node: the hop or link right after a router (or a
//     silent hop) that failing flows cross. Flows through that node are
//     exposed; a share q of them (those the router hashes onto the bad
//     member or link) die there and answer no TTL beyond it. Where the
//     routers at its TTL rate-limit their errors, a flow silent there
//     crossed that router as often as the flows that answered there did
//     (maybeCross).
//   - forward, an unseen member at a TTL behind several routers (or hops
//     silent for every flow): every flow that gets that far is exposed.
//   - forward, a hop that answers the failing flows and passes them no
//     further (destination unreachable, a loop, an address only failing
//     flows cross): the flows that show it.
//   - return, a member of the stage at a TTL, or a link toward the client
//     into it: every flow is exposed, since the reverse tuple's hash is not
//     observed. Where routers send their ICMP errors along the flow's own
//     return path, the errors of every router beyond that stage are lost
//     with the answers: the failing flows answer up to that TTL and no
//     further. (Plain Linux sends an error out of the member the flow's
//     answers take from the router and routes it on from there by its own
//     header: that holds where the router beyond is the last one; further
//     on, the errors are hashed apart from the answers, below.) Such a
//     member also loses its own errors, so it is silent for every flow
//     while healthy flows cross it (a link into it does not). A flow a
//     router said it could not forward (an unreachable, a loop) is never
//     one a return fault explains.
//   - return, the answers alone: the failing flows answer as far as healthy
//     flows do and only the destination's answer is missing (routers that
//     send their errors along a fixed path, a device dropping only
//     SYN-ACKs, the target itself). The ICMP-error behaviour is carried,
//     not assumed: a return member is also scored with errors hashed apart
//     from the answers (a failing flow then shows either pattern).
//
// Each hypothesis is scored by its likelihood. A failing flow it exposes is
// explained with probability q times the chance of its hop pattern: hops
// before the fault that should answer but are silent cost the share of
// healthy flows through the same node that are silent there (Jeffreys
// estimate; where every healthy flow is, the hop may be a router that
// never answers), an answer beyond the fault is impossible. Any other failing
// flow failed by chance: the background loss (measured on the flows that
// answered) to the power of its probes, or a stray failure, allowed about
// once in a hundred traces (but not to the null hypothesis, "no fault", against
// which the scores are taken: the sweep judged these failures beyond the
// loss already). A healthy flow it exposes costs 1-q; a dead link from a
// router to the one member of the next stage its healthy flows never
// reach gets that back, since those flows then spread over the other
// members only (linkCredit). q is fitted (the share of the exposed flows
// it explains); where one bad member of a stage is meant, the share it
// would give (1/M) is scored too, so a return fault at a stage of 4 and
// an unseen forward member at a stage of 2 are told apart by how many
// flows fail. M counts the stage's routers under two readings of the
// fabric's addresses, one router each or one per link toward the stage
// before, weighed by how well each fits the addresses seen (readings.go).
// Three priors are written down: a router is
// silent by its own configuration 1 time in 10 (silentPrior), so a return
// member that is silent for every flow while healthy flows cross it
// explains that silence too; a member that loses traffic toward the
// client but gets its own errors out, 1 time in 20 (returnSilentPrior); a
// return fault that fits a link dead toward the client into a member (its
// own errors get out) is one, 1 time in 4 (returnLinkPrior). A return
// fault whose routers' errors take paths of their own also explains the
// stages beyond it that are silent for everyone (silentBeyond). The
// score is the log-likelihood ratio against
// "every failure is chance", less half a log of the flows per fitted share
// (BIC). Two faults at once are every forward hypothesis with every return
// one, each flow taking the likelier; they pay the penalty twice and a
// uniform prior over the places, and are kept only when they beat the best
// single fault by the decisive ratio. A link dead both ways is one fault:
// a forward fault after a router with a link dead toward the client into
// that router's stage pays as one (bothWays). Flows picked
// for tracing by state (failing ones first, Sample) are weighed back to
// the classified counts for the shares; in the likelihood each traced flow
// counts once, for what its path shows, and the untraced ones for their
// states alone: how many fail in all, which a hypothesis's share times
// its exposure must match. (Counting each traced flow as the flows it
// stands for would be as sure as if all of them had been traced: a
// second fault fitted to two traced flows would count as eight.)

import (
	"cmp"
	"math"
	"net/netip"
	"slices"
	"strconv"

	"github.com/ecmpscan/ecmpscan/hash"
)

// HypothesisKind says what a hypothesis blames.
type HypothesisKind string

// The hypothesis kinds.
const (
	// HypLink: the forward link Addr -> Next.
	HypLink HypothesisKind = "link"
	// HypNextHop: the forward hop right after Addr, which no failing flow
	// reaches and no healthy one names (a member that never answers, or a
	// link to one).
	HypNextHop HypothesisKind = "next-hop"
	// HypMember: a forward member at TTL, behind every router in Behind,
	// that never answers.
	HypMember HypothesisKind = "unseen-member"
	// HypHop: Addr answers the failing flows and forwards them no further.
	HypHop HypothesisKind = "hop"
	// HypReturnLink: a link toward the client into a member of the stage
	// at TTL, dead that way; the member's own errors get out.
	HypReturnLink HypothesisKind = "return-link"
	// HypReturnMember: a member of the stage at TTL, or its link toward
	// the client, loses the answers and the ICMP errors that ride back
	// with them.
	HypReturnMember HypothesisKind = "return-member"
	// HypReturnPath: the answers are lost on the way back but the routers'
	// errors are not; anywhere on the return path, or the target.
	HypReturnPath HypothesisKind = "return-path"
)

// Hypothesis is one explanation of the failing flows, scored.
type Hypothesis struct {
	Direction Direction
	Kind      HypothesisKind
	// Addr and Next place it: the router before the fault and, for a
	// link, the router after it. Invalid where no probe could see it.
	Addr, Next netip.Addr
	// Silent: the fault is right after a hop that is silent for every
	// flow, behind Addr.
	Silent bool
	// Behind lists the routers an unseen member sits behind; Beside
	// counts the members seen at its TTL, and BesideAddrs their addresses
	// when that is more (routers answering from one address per link).
	Behind      []netip.Addr
	Beside      int
	BesideAddrs int
	// BehindSilent counts the hops, silent for every flow, that the unseen
	// member is behind too.
	BehindSilent int
	// TTL is the first TTL the fault stops (forward), or the stage of a
	// return member; 0 when unknown.
	TTL int
	// ICMPPath is "flow" when the hypothesis needs the routers' errors to
	// follow the flows' return path, "" when it holds either way.
	ICMPPath string
	// Explains counts the failing flows it explains; Contradicts the
	// failing flows it cannot (they answer beyond the fault, or it does
	// not reach them) plus healthy flows that cross a link it says is dead.
	Explains, Contradicts int
	// Share is the fitted share of the exposed flows that fail.
	Share float64
	// Score is the log-likelihood ratio against chance, less the penalty.
	Score float64
	// And is a second fault at the same time, when one does not explain
	// enough (a link dead both ways).
	And *Hypothesis
}

// Sample says how the traced flows were picked from a sweep's: each traced
// failing flow stands for Fail failing flows of the sweep, each healthy one
// for OK healthy ones (0 or 1: all of them were traced). The shares a
// hypothesis predicts are the population's, so the scores weigh the flows
// back. Arrived, when set, is what a responder at the target saw (sweep or
// trace --responder): for each source port it watched, whether its SYNs
// arrived. A failing flow whose SYNs arrived was lost on the way back, one
// whose SYNs never did on the way there, so only hypotheses of that
// direction may explain it.
type Sample struct {
	Fail, OK float64
	Arrived  map[uint16]bool
	// Weight is what a traced flow stands for where it is not its state's
	// (a second look's flows, picked by path, and those of the same
	// stratum: WeighBack), by source port.
	Weight map[uint16]float64
	// Looked are the flows a second look traced, by source port: probed
	// in a window of their own (Looked.Ports).
	Looked map[uint16]bool
	// OneRouter are groups of addresses an alias test found to be one
	// router's (AliasTest.Groups).
	OneRouter [][]netip.Addr
}

// returnSilentPrior is the probability that a member that loses traffic
// toward the client still gets its own ICMP errors out: they leave by the
// same routes, so it is small (1 in 20); a device whose forwarding plane
// alone drops does.
const returnSilentPrior = 0.05

// returnLinkPrior is the probability that a return fault that fits a
// link dead toward the client into a member, the member's own errors
// getting out, is one: a link failing in one direction only (one fibre of
// a pair, a bad optic) is rarer than a member failing, 1 in 4.
const returnLinkPrior = 0.25

// silentPrior is the probability that a router is silent by its own
// configuration (sends no time-exceeded), 1 in 10: a return member that loses its own
// errors explains one silent router, which other hypotheses must take as
// configured that way.
const silentPrior = 0.1

// answeringSilence is the second parameter of the Beta prior of how often
// a router that answers is silent for a flow (mean 1/11): rarely.
const answeringSilence = 5.0

// logBeta is log B(x, y).
func logBeta(x, y float64) float64 {
	a, _ := math.Lgamma(x)
	b, _ := math.Lgamma(y)
	c, _ := math.Lgamma(x + y)
	return a + b - c
}

// maxPairs bounds the forward hypotheses paired with return ones.
const maxPairs = 64

// minChance keeps the chance of a failure finite on a loss-free run.
const minChance = 1e-12

// candidate is a hypothesis with what scoring it needs.
type candidate struct {
	h       Hypothesis
	exposed []float64       // by flow index, the chance it crosses the place (maybeCross)
	cost    map[int]float64 // failing flow -> log P(its hops | the fault); absent: inconsistent
	shares  shares          // the stage's widths under each reading, when one bad member or link is meant
	prior   float64         // log prior
	dead    []int           // healthy flows over a link it says is dead
	// credit is what the healthy flows' spread adds to a link's score
	// (linkCredit).
	credit float64
}

// hit is log P(failing flow i failed by the fault, its hops as seen) at
// share q: it crossed the place, was among the share hit, and shows the
// hops the fault predicts (cost). ok is false where it cannot have.
func (c *candidate) hit(i int, q float64) (float64, bool) {
	cost, ok := c.cost[i]
	if !ok || c.exposed[i] == 0 {
		return 0, false
	}
	return math.Log(q*c.exposed[i]) + cost, true
}

// tally weighs the failing flows a fault explains: w, what they stand for,
// and crossed, what they add to its exposure. A flow it explains crossed
// its place, whatever its chance of that was (maybeCross).
type tally struct{ w, crossed float64 }

func (t *tally) add(e *evidence, c *candidate, i int) {
	t.w += e.w[i]
	t.crossed += e.w[i] * (1 - c.exposed[i])
}

// evidence is what the scores share.
type evidence struct {
	a       *analysis
	chance  []float64 // log P(fail by chance or as a stray), by flow
	loss    []float64 // log P(fail by the background loss alone), by flow
	failing []int
	healthy []int
	silent  map[string]float64
	retry   map[int]retryRate // by TTL, where rate-limited holes were probed again
	// later marks the flows a second look traced, by flow index: their
	// hops are weighed against each other's (silentShare).
	later []bool
	// w is how many flows of the population each traced flow stands for
	// (Sample): they weigh the shares back, flow by flow.
	w []float64
	// uf and uo count the flows classified but not traced, failing and
	// healthy; chanceRate is the chance that a flow fails by chance or
	// as a stray, lossRate by the background loss alone (the traced
	// flows' mean).
	uf, uo               float64
	chanceRate, lossRate float64
}

func (a *analysis) evidence(sample Sample) *evidence {
	e := &evidence{a: a, silent: map[string]float64{}, chance: make([]float64, len(a.flows)),
		retry: a.retryRates(), w: make([]float64, len(a.flows))}
	wf, wh := max(sample.Fail, 1), max(sample.OK, 1) // by state, where Weight does not say
	lost, sent := 0, 0
	for i, f := range a.flows {
		switch f.State {
		case hash.StateOK, hash.StateFlaky:
			lost += f.Sent - f.Received
			sent += f.Sent
		}
		e.w[i] = 1
		if f.State == hash.StateOK {
			e.healthy = append(e.healthy, i)
			e.w[i] = wh
		}
		if f.State == hash.StateFail {
			e.failing = append(e.failing, i)
			e.w[i] = wf
		}
		if w, ok := sample.Weight[f.Sport]; ok {
			e.w[i] = max(w, 1)
		}
		e.later = append(e.later, sample.Looked[f.Sport])
	}
	b := (float64(lost) + 0.5) / (float64(sent) + 1)
	// A failure no hypothesis explains (a transient, a fault too small to
	// name) is allowed about once in a hundred traces, whatever the loss: one
	// stray failure must not outweigh the pattern of all the others.
	// The null hypothesis (no fault: every failure is the loss's) gets no
	// such allowance: the sweep already judged these failures beyond it.
	stray := 1 / (100 * float64(len(e.failing)+len(e.healthy)+1))
	e.loss = make([]float64, len(a.flows))
	for i, f := range a.flows {
		e.loss[i] = math.Log(max(math.Pow(b, float64(max(f.Sent, 1))), minChance))
		e.chance[i] = max(e.loss[i], math.Log(stray))
	}
	for _, i := range e.failing {
		e.uf += e.w[i] - 1
	}
	for _, i := range e.healthy {
		e.uo += e.w[i] - 1
	}
	for i := range a.flows {
		e.chanceRate += math.Exp(e.chance[i]) / float64(len(a.flows))
		e.lossRate += math.Exp(e.loss[i]) / float64(len(a.flows))
	}
	return e
}

// untraced is the log-likelihood of the untraced flows' states when a
// flow fails with probability fail: all that is known of them. The traced
// flows were picked by state, so each counts once, for what its path
// shows; the states of the others say how many fail in all, which a
// hypothesis's share and exposure must match.
func (e *evidence) untraced(fail float64) float64 {
	if e.uf == 0 && e.uo == 0 {
		return 0
	}
	fail = min(max(fail, minChance), 1-1e-9)
	return e.uf*math.Log(fail) + e.uo*math.Log1p(-fail)
}

// failRate is the chance that a flow of the population fails when those
// exposed fail with probability q: exposed (the weighted share) and hit,
// or failed by chance.
func (e *evidence) failRate(exposed []float64, q float64) float64 {
	pi := e.exposure(exposed) / max(e.population(), 1)
	return 1 - (1-pi*q)*(1-e.chanceRate)
}

// silentShare is the share of healthy flows through node prev whose next
// node is id (Jeffreys estimate, or, where all are, a router that may
// never answer), as a log: among the first pass's flows, or, later, the
// second look's. Routers that rate-limit their errors earn answers back
// while the first pass waits, so the look's flows find them answering
// more: weighed against those, a first-pass flow's silence past its
// place would look like a fault there.
func (e *evidence) silentShare(prev, id string, later bool) float64 {
	key := prev + " " + id + " " + strconv.FormatBool(later)
	if v, ok := e.silent[key]; ok {
		return v
	}
	var n, k int
	for _, o := range e.a.healthy[prev] {
		if e.later[o.flow] != later {
			continue
		}
		p := e.a.paths[o.flow]
		if o.pos+1 >= len(p) {
			continue
		}
		n++
		next := p[o.pos+1]
		// Where holes were probed again, a hop that answered only then
		// was silent in the first pass: hopCost adds what probing again
		// showed.
		r, again := e.retry[next.ttl]
		if next.id == id || (again && r.answeredOnRetry(next) && nextSilentID(prev) == id) {
			k++
		}
	}
	share := (float64(k) + 0.5) / (float64(n) + 1)
	if k == n && n > 0 {
		// Every healthy flow is silent there: a router that never
		// answers (silentPrior), or one that answers and happened not
		// to, n times in n (m, its silence rate drawn from
		// Beta(0.5, answeringSilence): rare, a lost or rate-limited
		// answer). A router that never answers is silent for the
		// failing flows too.
		m := math.Exp(logBeta(float64(n)+0.5, answeringSilence) - logBeta(0.5, answeringSilence))
		w := silentPrior / (silentPrior + (1-silentPrior)*m)
		share = w + (1-w)*share
	}
	v := math.Log(share)
	e.silent[key] = v
	return v
}

// hopCost is log P(flow i's hops | it died after position m): every hop up
// to m should answer (a silent one costs how often healthy flows are silent
// there), none after may. ok is false when it answered beyond m.
func (e *evidence) hopCost(i, m int) (float64, bool) {
	p := e.a.paths[i]
	last := lastAnswer(p)
	if last > m {
		return 0, false
	}
	c := 0.0
	for t := last + 1; t <= m && t < len(p); t++ {
		c += e.silentShare(p[t-1].id, p[t].id, e.later[i])
		if r, again := e.retry[p[t].ttl]; again && p[t].hop != nil && p[t].hop.Probes > r.first {
			c += float64(p[t].hop.Probes-r.first) * r.miss
		}
	}
	return c, true
}

// exposure is the weighted count of the failing and healthy flows exposed.
func (e *evidence) exposure(exposed []float64) float64 {
	n := 0.0
	for _, i := range e.failing {
		n += exposed[i] * e.w[i]
	}
	for _, i := range e.healthy {
		n += exposed[i] * e.w[i]
	}
	return n
}

// population is the weighted count of failing and healthy flows.
func (e *evidence) population() float64 {
	return float64(len(e.failing)+len(e.healthy)) + e.uf + e.uo
}

// score fits the share and scores a candidate.
func (e *evidence) score(c *candidate) {
	n := e.exposure(c.exposed)
	if n == 0 {
		c.h.Score = math.Inf(-1)
		return
	}
	// The share is weighed as the exposure is, flow by flow: a second
	// look traces a stratum whole (weight 1) where the rest stand for many.
	var t tally
	for i := range c.cost {
		t.add(e, c, i)
	}
	q := min(t.w/(n+t.crossed), 1)
	for range 4 { // hard EM: refit q on the flows it explains better than chance
		t = tally{}
		for _, i := range e.failing {
			if l, ok := c.hit(i, q); ok && l > e.chance[i] {
				t.add(e, c, i)
			}
		}
		q = min(max(t.w, 0.5)/(n+t.crossed), 1)
	}
	ll, explains := e.loglik(c, min(q, 1-1e-9))
	// One bad member of a stage of M fails 1/M of the flows: score that
	// share, under each reading of the stage's width (readings.go), and
	// keep the worse of it and the fitted share. A fitted share far from
	// the readings is evidence against the hypothesis.
	mixed := mixture(modeWeights(e.a.reading(c.shares.alter).fit), c.shares.widths, ll, func(q float64) float64 {
		l, _ := e.loglik(c, q)
		return l
	})
	ll = min(ll, mixed)
	c.h.Share, c.h.Explains = q, explains
	c.h.Contradicts = len(e.failing) - explains + len(c.dead)
	c.h.Score = ll - e.null() - 0.5*math.Log(e.population()) + c.prior + c.credit
	if len(c.dead) > 0 {
		c.h.Score = math.Inf(-1)
	}
}

// logMeanExp is log(mean(exp(xs))), computed without overflow.
func logMeanExp(xs []float64) float64 {
	top := slices.Max(xs)
	sum := 0.0
	for _, x := range xs {
		sum += math.Exp(x - top)
	}
	return top + math.Log(sum/float64(len(xs)))
}

// null is the log-likelihood of "no fault: every failure is the
// background loss's".
func (e *evidence) null() float64 {
	ll := e.untraced(e.lossRate)
	for _, i := range e.failing {
		ll += e.loss[i]
	}
	return ll
}

func (e *evidence) loglik(c *candidate, q float64) (float64, int) {
	ll, explains := 0.0, 0
	q = min(q, 1-1e-9)
	for _, i := range e.failing {
		best := e.chance[i]
		if l, ok := c.hit(i, q); ok && l > best {
			best = l
			explains++
		}
		ll += best
	}
	for _, i := range e.healthy {
		ll += math.Log1p(-q * c.exposed[i])
	}
	return ll + e.untraced(e.failRate(c.exposed, q)), explains
}

// hypotheses enumerates and scores every single fault, and the best pairs,
// best first. Empty when no flow fails or none is healthy.
func (a *analysis) hypotheses(sample Sample) []Hypothesis {
	e := a.evidence(sample)
	if len(e.failing) == 0 || len(e.healthy) == 0 {
		return nil
	}
	cands := a.forwardCandidates(e)
	cands = append(cands, a.returnCandidates(e)...)
	for _, c := range cands {
		a.twoEnded(c, sample.Arrived)
		e.score(c)
	}
	cands = slices.DeleteFunc(cands, func(c *candidate) bool { return math.IsInf(c.h.Score, -1) || c.h.Explains == 0 })
	sortCandidates(cands)
	// A second fault is named only when the data demand it: the pair must
	// beat the best single fault by the decisive ratio.
	var single float64
	if len(cands) > 0 {
		single = cands[0].h.Score
	}
	pairs := e.pairs(cands)
	sortCandidates(pairs)
	// A pair that fits better, but not by the decisive ratio, is kept
	// aside: its forward half is a place to look, not the verdict.
	if len(pairs) > 0 && len(cands) > 0 && cands[0].h.Direction == DirectionReturn &&
		pairs[0].h.Score > single && pairs[0].h.Score < single+decisive {
		t := pairs[0].h
		a.tentative = &t
	}
	pairs = slices.DeleteFunc(pairs, func(c *candidate) bool {
		return math.IsInf(c.h.Score, -1) || c.h.Score < single+decisive
	})
	cands = append(cands, pairs...)
	sortCandidates(cands)
	out := make([]Hypothesis, 0, len(cands))
	for _, c := range cands {
		out = append(out, c.h)
	}
	return out
}

// twoEnded keeps a candidate from explaining the failing flows a responder
// saw go the other way.
func (a *analysis) twoEnded(c *candidate, arrived map[uint16]bool) {
	for i := range c.cost {
		got, known := arrived[a.flows[i].Sport]
		if known && got != (c.h.Direction == DirectionReturn) {
			delete(c.cost, i)
		}
	}
}

func sortCandidates(cs []*candidate) {
	slices.SortStableFunc(cs, func(x, y *candidate) int {
		return cmp.Or(cmp.Compare(y.h.Score, x.h.Score), cmp.Compare(y.h.Explains, x.h.Explains),
			cmp.Compare(x.h.TTL, y.h.TTL), x.h.Addr.Compare(y.h.Addr), x.h.Next.Compare(y.h.Next),
			cmp.Compare(x.h.Kind, y.h.Kind))
	})
}

// pairs scores the best forward hypotheses together with the best return
// ones: a link dead both ways, or two faults.
func (e *evidence) pairs(cs []*candidate) []*candidate {
	// Every forward hypothesis with every return one: the forward half
	// of a pair may explain few flows alone (those the return half does
	// not).
	var fwd, ret []*candidate
	for _, c := range cs {
		switch {
		case c.h.Direction == DirectionForward && len(fwd) < maxPairs:
			fwd = append(fwd, c)
		case c.h.Direction == DirectionReturn && len(ret) < maxPairs:
			ret = append(ret, c)
		}
	}
	// A uniform prior over places: a pair is one of nf x nr, a single
	// fault one of nf + nr.
	nf, nr := 0, 0
	for _, c := range cs {
		if c.h.Direction == DirectionForward {
			nf++
		} else {
			nr++
		}
	}
	place := math.Log(float64(nf)) + math.Log(float64(nr)) - math.Log(float64(nf+nr))
	var out []*candidate
	for _, f := range fwd {
		for _, r := range ret {
			if !bothWays(f, r) {
				c := e.pair(f, r)
				c.h.Score -= place
				out = append(out, c)
				continue
			}
			// One link dead both ways is one fault, not two: the forward
			// link names the return half's place, and its share is the
			// link's, from the widths. So it takes a single fault's prior,
			// the forward half's, and one fitted share.
			c := e.pair(e.a.asLink(f), r)
			c.h.Score += 0.5*math.Log(e.population()) - r.prior
			out = append(out, c)
		}
	}
	return out
}

// asLink is a forward fault right after a router read as one of its links
// dead: where it has no widths of its own (the member it never reaches
// is not told apart), those of the stage it leads into, whose members the
// router spreads its flows over. A link into a stage of one fails every
// flow over it.
func (a *analysis) asLink(f *candidate) *candidate {
	if f.shares.any() {
		return f
	}
	r := a.reading(f.shares.alter)
	link := *f
	for m := range aliasModes {
		if w := r.width(f.h.TTL, m); w > 0 {
			link.shares.widths[m] = []int{w}
		}
	}
	return &link
}

// bothWays says a forward and a return hypothesis may be one link dead
// both ways: a forward fault right after a router (into the next stage)
// and a link dead toward the client into that router's stage from the
// one beyond.
func bothWays(f, r *candidate) bool {
	return (f.h.Kind == HypLink || f.h.Kind == HypNextHop) && f.h.Addr.IsValid() &&
		r.h.Kind == HypReturnLink && r.h.TTL == f.h.TTL-1 && r.shares.any()
}

// pair scores two faults at once: each failing flow is explained by the
// likelier of the two (or chance), each healthy flow survives both.
func (e *evidence) pair(f, r *candidate) *candidate {
	qf, qr := max(f.h.Share, 1e-9), max(r.h.Share, 1e-9)
	for range 3 {
		fit := e.pairLoglik(f, r, qf, qr)
		qf = min(max(fit.f.w, 0.5)/max(e.exposure(f.exposed)+fit.f.crossed, 1), 1-1e-9)
		qr = min(max(fit.r.w, 0.5)/max(e.exposure(r.exposed)+fit.r.crossed, 1), 1-1e-9)
	}
	fit := e.pairLoglik(f, r, qf, qr)
	ll, kf, kr := fit.ll, fit.kf, fit.kr
	// The shares one bad member of a stage would give, as for a single
	// hypothesis, under one reading of the fabric for both.
	ll = min(ll, e.pairMixture(f, r, qf, qr))
	h := f.h
	second := r.h
	second.Explains, second.Share = kr, qr
	h.And = &second
	h.Explains, h.Share = kf, qf
	h.Contradicts = len(e.failing) - kf - kr
	h.Score = ll - e.null() - math.Log(e.population()) + f.prior + r.prior + f.credit
	if (kf < 2 && f.credit == 0) || kr == 0 {
		// One of them explains nothing the other does not; or the second,
		// forward, fault explains one flow only, which is what the
		// background loss does too: among every hop some forward place is
		// crossed by that one flow alone and fits it exactly. A link
		// whose share is its stage's and that healthy flows avoid
		// (linkCredit) fits no flow by construction.
		h.Score = math.Inf(-1)
	}
	return &candidate{h: h}
}

// pairMixture is pairLoglik under each reading of the stages' widths
// (readings.go), each half at its readings' shares or, without widths, at
// its fitted share.
func (e *evidence) pairMixture(f, r *candidate, qf, qr float64) float64 {
	weights := modeWeights(e.a.reading(alter{unseen: f.shares.alter.unseen, short: r.shares.alter.short}).fit)
	return byReading(weights, func(m aliasMode) []float64 {
		var lls []float64
		for _, a := range pairShares(f, m, qf) {
			for _, b := range pairShares(r, m, qr) {
				lls = append(lls, e.pairLoglik(f, r, a, b).ll)
			}
		}
		return lls
	})
}

// pairShares are a pair's half's shares under reading m: its fitted one
// when it has no widths.
func pairShares(c *candidate, m aliasMode, fitted float64) []float64 {
	if !c.shares.any() {
		return []float64{fitted}
	}
	out := make([]float64, 0, len(c.shares.widths[m]))
	for _, w := range c.shares.widths[m] {
		out = append(out, 1/float64(w))
	}
	return out
}

// pairFit is a pair's log-likelihood and the failing flows each half
// explains: counted, and weighed (tally).
type pairFit struct {
	ll     float64
	kf, kr int
	f, r   tally
}

// pairLoglik is the log-likelihood of two faults at once with shares qf and
// qr: each failing flow taken by the likelier of the two (or chance), each
// healthy flow surviving both.
func (e *evidence) pairLoglik(f, r *candidate, qf, qr float64) pairFit {
	var fit pairFit
	ll := 0.0
	for _, i := range e.failing {
		best, by := e.chance[i], 0
		if l, ok := f.hit(i, qf); ok && l > best {
			best, by = l, 1
		}
		if l, ok := r.hit(i, qr); ok && l > best {
			best, by = l, 2
		}
		ll += best
		switch by {
		case 1:
			fit.kf++
			fit.f.add(e, f, i)
		case 2:
			fit.kr++
			fit.r.add(e, r, i)
		}
	}
	for _, i := range e.healthy {
		// A flow survives both faults: its way out and its way back are
		// hashed apart, so the two chances multiply.
		keep := (1 - qf*f.exposed[i]) * (1 - qr*r.exposed[i])
		ll += math.Log(max(keep, 1e-9))
	}
	pf, pr := 1-e.failRate(f.exposed, qf), 1-e.failRate(r.exposed, qr)
	fit.ll = ll + e.untraced(1-pf*pr/(1-e.chanceRate))
	return fit
}

// forwardCandidates: a fault right after each node failing flows may have
// died after, an unseen member at each TTL behind several routers, and the
// hops that answer failing flows and pass them no further.
func (a *analysis) forwardCandidates(e *evidence) []*candidate {
	byKey := map[string]*candidate{}
	var out []*candidate
	// The routers failing flows die behind, per TTL: answering ones by
	// router, silent hops (that healthy flows cross) by node.
	stageBehind := map[int]map[string]netip.Addr{}
	for _, i := range e.failing {
		p := a.paths[i]
		last := lastAnswer(p)
		for t := last; t < len(p); t++ {
			if t > last && len(a.healthy[p[t].id]) == 0 {
				break // a silence no healthy flow shares: it died before it
			}
			if reach, cont := a.after(p[t].id); cont == 0 || reach > 0 {
				continue
			}
			key := "after " + a.nodeKey(p[t]) + "@" + strconv.Itoa(t)
			if byKey[key] == nil {
				c := a.afterCandidate(e, a.asRouter(p[t]), t)
				byKey[key] = c
				out = append(out, c)
			}
			if t > 0 {
				if stageBehind[t] == nil {
					stageBehind[t] = map[string]netip.Addr{}
				}
				addr := netip.Addr{}
				if n := a.asRouter(p[t]); n.answered() {
					addr = a.routerOf(n.addr)
				}
				stageBehind[t][a.nodeKey(p[t])] = addr
			}
		}
	}
	for t, behind := range stageBehind {
		if len(behind) >= 2 {
			answering, silent := map[netip.Addr]bool{}, 0
			for _, x := range behind {
				if x.IsValid() {
					answering[x] = true
				} else {
					silent++
				}
			}
			c := a.memberCandidate(e, t, sortedAddrs(answering))
			c.h.BehindSilent = silent
			out = append(out, c)
		}
	}
	return append(out, a.explicitCandidates(e)...)
}

// nodeKey names a node by router: a silent node by its own id, but a
// silence at the first hop by the one router there (asRouter).
func (a *analysis) nodeKey(n pnode) string {
	n = a.asRouter(n)
	if n.answered() {
		return a.routerOf(n.addr).String()
	}
	return n.id
}

// asRouter is the one first hop's node for a flow silent at TTL 1 where
// one router answers every flow there that gets an answer (firstHop):
// every flow leaves the host by it, so that silence is that router's (a
// rate-limited answer, most often; it answers each flow only so often),
// not a hop of a path of its own. Other nodes are themselves.
func (a *analysis) asRouter(n pnode) pnode {
	if n.ttl == 1 && !n.answered() && !n.reached && a.first != nil {
		return *a.first
	}
	return n
}

// afterCandidate: the fault is right after node n at position t.
func (a *analysis) afterCandidate(e *evidence, n pnode, t int) *candidate {
	c := &candidate{exposed: make([]float64, len(a.flows)), cost: map[int]float64{}}
	c.h = Hypothesis{Direction: DirectionForward, Kind: HypNextHop, Addr: n.addr, TTL: t + 1}
	if !n.answered() {
		c.h.Addr = n.last
	}
	key := a.nodeKey(n)
	for i, p := range a.paths {
		if t < len(p) && a.nodeKey(p[t]) == key {
			c.exposed[i] = 1
		}
	}
	if n.answered() {
		a.maybeCross(e, c.exposed, key, t)
	}
	ni := a.nextOf(n)
	if len(ni.cands) > 0 {
		c.h.Kind, c.h.Next = HypLink, ni.cands[0].rep
		linkCredit(c, ni, a.linkFanOut(c.h.TTL, ni))
	}
	a.fillCosts(e, c, t)
	c.h.Silent = !n.answered() && t > 0
	return c
}

// linkCredit scores a dead link from a router to the one member of the
// next stage (width M) that its healthy flows never reach: it kills 1/M of
// the flows the router forwards, and sends every healthy one to one of
// the other M-1 members, 1/(M-1) each, where the other hypotheses spread
// them over all M, 1/M each. The loglik charges each healthy flow 1-1/M
// for surviving; the spread pays it back, M/(M-1), for each healthy flow
// whose next hop answered. The dead member is any of the K members it
// never reaches, K/M of the stage (it names the likeliest): where K is
// what chance leaves unreached among M, the credit is about nothing. So
// avoiding a member is evidence as far as chance would not have done it,
// and the link's share is its stage's.
//
// fanOut is the next stage's width read by link (0: that reading does not
// fit): its addresses are then one per link toward the stage before, so
// the routers the router never reaches are mostly other routers' links,
// and its fan-out is the stage's routers.
func linkCredit(c *candidate, ni *nextInfo, fanOut int) {
	if ni.width < 2 || ni.healthyNext == 0 {
		return
	}
	c.shares.widths[byRouter] = []int{ni.width}
	c.shares.widths[byLink] = []int{cmp.Or(fanOut, ni.width)}
	m := float64(ni.width)
	c.credit = float64(ni.healthyNext)*math.Log(m/(m-1)) + math.Log(float64(len(ni.cands))/m)
}

// linkFanOut is the width of the stage at ttl read by link, where that
// reading fits and leaves room for a member the router after ni never
// reaches; 0 otherwise.
func (a *analysis) linkFanOut(ttl int, ni *nextInfo) int {
	r := a.reading(alter{})
	if w := r.width(ttl, byLink); r.fit > 0 && w > ni.width-len(ni.cands) {
		return w
	}
	return 0
}

// memberCandidate: an unseen member at TTL t+1 behind the routers at t.
func (a *analysis) memberCandidate(e *evidence, t int, behind []netip.Addr) *candidate {
	c := &candidate{exposed: make([]float64, len(a.flows)), cost: map[int]float64{}}
	c.h = Hypothesis{Direction: DirectionForward, Kind: HypMember, Behind: behind, TTL: t + 1}
	for i, p := range a.paths {
		if t < len(p) {
			if reach, cont := a.after(p[t].id); cont > 0 && reach == 0 {
				c.exposed[i] = 1
			}
		}
	}
	c.shares.alter = alter{unseen: t + 1}
	r := a.reading(c.shares.alter)
	for m := range aliasModes {
		if w := r.width(t+1, m); w > 1 && (m == byRouter || r.fit > 0) {
			c.shares.widths[m] = []int{w} // the members seen there and the unseen one
			if c.h.Beside == 0 || w-1 < c.h.Beside {
				c.h.Beside = w - 1
			}
		}
	}
	if c.h.Beside > 0 {
		c.h.BesideAddrs, _ = a.stageCount(t + 1)
	}
	a.fillCosts(e, c, t)
	return c
}

func (a *analysis) fillCosts(e *evidence, c *candidate, m int) {
	for _, i := range e.failing {
		if c.exposed[i] == 0 {
			continue
		}
		if cost, ok := e.hopCost(i, m); ok {
			c.cost[i] = cost
		}
	}
}

// explicitCandidates: hops that answer failing flows with an unreachable,
// in a loop, or that no healthy flow crosses.
func (a *analysis) explicitCandidates(e *evidence) []*candidate {
	byKey := map[string]*candidate{}
	var out []*candidate
	for _, i := range e.failing {
		f := a.fateOf(i)
		if f.kind != fateUnreach && f.kind != fateLoop && f.kind != fateOnly {
			continue
		}
		n := a.paths[i][f.pos]
		key := strconv.Itoa(int(f.kind)) + " " + a.nodeKey(n) + "@" + strconv.Itoa(f.pos)
		c := byKey[key]
		if c == nil {
			c = &candidate{exposed: make([]float64, len(a.flows)), cost: map[int]float64{}}
			c.h = Hypothesis{Direction: DirectionForward, Kind: HypHop, Addr: n.addr, TTL: f.pos}
			if f.kind == fateLoop {
				c.h.Next = f.next
			}
			for j, p := range a.paths {
				if f.pos < len(p) && a.nodeKey(p[f.pos]) == a.nodeKey(n) {
					c.exposed[j] = 1
				}
			}
			byKey[key] = c
			out = append(out, c)
		}
		c.cost[i] = 0
	}
	return out
}

// stageWidth counts the members at position t: the routers healthy flows
// answer from there, and one more when healthy flows cross a silent hop
// there. 0 when no healthy flow gets that far.
func (a *analysis) stageWidth(t int) int {
	answering, silent := a.stageCount(t)
	return answering + silent
}

// returnShares are the widths a return member of stage s fails 1/width
// of the flows by, under each reading: the member, 1/W(s), or one link
// into it from the stage beyond, 1/(W(s) W(s+1)). It explains a short
// address count beyond it.
func (a *analysis) returnShares(s int) shares {
	out := shares{alter: alter{short: s + 1}}
	r := a.reading(out.alter)
	for m := range aliasModes {
		if w := r.width(s, m); w > 0 {
			out.widths[m] = []int{w}
			if beyond := r.width(s+1, m); beyond > 1 {
				out.widths[m] = append(out.widths[m], w*beyond)
			}
		}
	}
	return out
}

// silentStageShares are a return member's shares at a stage silent for
// every flow: two members, under either reading.
func silentStageShares(s int) shares {
	out := shares{alter: alter{short: s + 1}}
	for m := range aliasModes {
		out.widths[m] = []int{2}
	}
	return out
}

// linkShares are the widths of a link dead toward the client into a
// member of stage s, read by link only (by router, the member hypothesis
// covers its links, at the member's prior): R routers beyond, each
// hashing 1/W(s) of what it sends back onto its link into the member,
// fail 1/(W(s) R). Read by link, the stage beyond may show the dead
// link's address missing (readings.go). None where the link reading does
// not fit at all.
func (a *analysis) linkShares(s int) shares {
	out := shares{alter: alter{short: s + 1}}
	r := a.reading(out.alter)
	if r.fit > 0 && r.width(s+1, byLink) > 0 {
		out.widths[byLink] = []int{r.width(s, byLink) * r.width(s+1, byLink)}
	}
	return out
}

// stageCount is the routers healthy flows answer from at position t, and 1
// when healthy flows cross a silent hop there.
func (a *analysis) stageCount(t int) (answering, silent int) {
	members := map[netip.Addr]bool{}
	for _, i := range a.okFlows() {
		if p := a.paths[i]; t < len(p) && p[t].answered() {
			members[a.routerOf(p[t].addr)] = true
		}
	}
	if a.silentCrossedAt(t) {
		silent = 1
	}
	return len(members), silent
}

func (a *analysis) okFlows() []int {
	var out []int
	for i, f := range a.flows {
		if f.State == hash.StateOK {
			out = append(out, i)
		}
	}
	return out
}

// returnCandidates: a return member at each stage of at least two members
// before the last router, and the answers alone.
func (a *analysis) returnCandidates(e *evidence) []*candidate {
	all := make([]float64, len(a.flows))
	for i := range all {
		all[i] = 1
	}
	var out []*candidate
	deepest := 0
	for _, i := range e.healthy {
		deepest = max(deepest, len(a.paths[i])-1)
	}
	// The last router (the one before the destination) is covered by the
	// answers-alone hypothesis; earlier stages by a return member.
	full := map[int]float64{} // failing flow -> cost of answering as far as healthy flows do
	depth := deepest - 1      // the last router before the destination
	for _, i := range e.failing {
		p := a.paths[i]
		switch f := a.fateOf(i); {
		case f.kind == fateReturn:
			if cost, ok := e.hopCost(i, f.pos); ok {
				full[i] = cost
			}
		case f.kind != fateLoop && f.kind != fateUnreach && len(p) > 1 && p[len(p)-1].answered():
			// Traced no further than an answer: nothing says it stopped.
			full[i], _ = e.hopCost(i, len(p)-1)
		case f.kind == fateUnknown && lastAnswer(p) == 0:
			// No answer at any TTL: as far as the healthy flows silent
			// there too go before the destination answers them, at the
			// cost of each silence, as forward faults take it.
			if m := a.silentReach(p); m > 0 {
				full[i], _ = e.hopCost(i, m)
			}
		case f.kind == fateForward:
			// Silent after a node healthy flows answer beyond: as far as
			// they go, at the cost of each silence there.
			if depth > lastAnswer(p) {
				if c, ok := e.hopCost(i, depth); ok {
					full[i] = c
				}
			}
		case f.kind == fateOnly || f.kind == fateUnknown:
			// Silent after an address no healthy flow crosses: as far as
			// healthy flows go, each TTL silent as often as it is for
			// them.
			if c, ok := e.stageSilence(p, lastAnswer(p), depth); ok {
				full[i] = c
			}
		}
	}
	for s := 1; s < deepest-1; s++ {
		answering, silent := a.stageCount(s)
		m, members := answering+silent, a.returnShares(s)
		if answering == 0 && silent == 1 && s > 1 {
			// Every router of the stage is silent for every flow, so its
			// width is not seen; a member may lose the answers (and its
			// own errors, the silence it explains) where it has two at
			// least: the fewest, as an unseen member beside the routers
			// seen is one more than they. (Not the first hop: every flow
			// leaves the host by one gateway.)
			m, members = 2, silentStageShares(s)
		}
		if m < 2 {
			continue
		}
		// A member loses its own errors too, so it is silent for every
		// flow, unless only its forwarding plane drops.
		prior := math.Log(returnSilentPrior)
		if a.silentCrossedAt(s) {
			prior = -math.Log(silentPrior) // it explains a silent router too
		}
		beyond := a.silentBeyond(s)
		out = append(out, a.returnAt(e, s, HypReturnMember, members, prior, beyond, all, full)...)
		// A link into a member, dead toward the client: the member's own
		// errors get out.
		if sh := a.linkShares(s); sh.any() {
			out = append(out, a.returnAt(e, s, HypReturnLink, sh, math.Log(returnLinkPrior), beyond, all, full)...)
		}
	}
	c := &candidate{exposed: all, cost: full}
	c.h = Hypothesis{Direction: DirectionReturn, Kind: HypReturnPath}
	return append(out, c)
}

// stageSilence is log P(flow p is silent after position from up to depth,
// the last router before the destination): at each TTL as often as
// healthy flows are silent there (Jeffreys estimate). ok is false when p
// answered beyond from or depth is not beyond it.
func (e *evidence) stageSilence(p []pnode, from, depth int) (float64, bool) {
	if from == 0 || depth <= from || lastAnswer(p) > from {
		return 0, false
	}
	c := 0.0
	for t := from + 1; t <= depth; t++ {
		n, k := 0, 0
		for _, i := range e.healthy {
			hp := e.a.paths[i]
			if t < len(hp) && !hp[t].reached {
				n++
				if !hp[t].answered() {
					k++
				}
			}
		}
		c += math.Log((float64(k) + 0.5) / (float64(n) + 1))
	}
	return c, true
}

// silentReach is the last node of a path that no hop answered which
// healthy flows share, when the healthy flows through it reach the
// destination right after it; 0 otherwise.
func (a *analysis) silentReach(p []pnode) int {
	m := a.sharedStretch(p, 0)
	if reach, cont := a.after(p[m].id); m == 0 || reach == 0 || cont > 0 {
		return 0
	}
	return m
}

// silentBeyond is the log-likelihood ratio by which a return fault at
// stage s, with the routers' errors taking paths of their own, explains
// the stages beyond it that are silent for every healthy flow crossing
// them: a router whose errors all take one path back loses them all
// through the bad member 1 time in W(s), or is silent by its own
// configuration (silentPrior), against the configuration alone.
func (a *analysis) silentBeyond(s int) float64 {
	w := a.stageWidth(s)
	if w < 1 {
		return 0
	}
	lr := 0.0
	for t := s + 1; ; t++ {
		answering, silent := a.stageCount(t)
		if answering+silent == 0 {
			return lr
		}
		if answering == 0 {
			lr += math.Log((1/float64(w) + silentPrior) / silentPrior)
		}
	}
}

// returnAt is a return fault of the kind at stage s with the given shares
// and prior, exposing every flow (all): with the routers' errors along the
// flow's return path (every failing flow goes silent after s), and hashed
// apart from the answers (a failing flow goes silent after s or answers as
// far as healthy flows do, full, even odds; the silent stages beyond it
// add beyond, silentBeyond). A flow a router said it could not forward
// (unreachable, a loop) was not lost on the way back.
func (a *analysis) returnAt(e *evidence, s int, kind HypothesisKind, sh shares, prior, beyond float64, all []float64, full map[int]float64) []*candidate {
	c := &candidate{exposed: all, cost: map[int]float64{}, shares: sh, prior: prior}
	c.h = Hypothesis{Direction: DirectionReturn, Kind: kind, TTL: s, ICMPPath: "flow"}
	a.fillCosts(e, c, s)
	for i := range c.cost {
		if k := a.fateOf(i).kind; k == fateUnreach || k == fateLoop {
			delete(c.cost, i)
		}
	}
	mixed := &candidate{exposed: all, cost: map[int]float64{}, shares: sh, prior: prior + beyond}
	mixed.h = c.h
	mixed.h.ICMPPath = ""
	for _, i := range e.failing {
		cs, okS := c.cost[i]
		cf, okF := full[i]
		switch {
		case okS && okF:
			mixed.cost[i] = math.Log(0.5*math.Exp(cs) + 0.5*math.Exp(cf))
		case okS:
			mixed.cost[i] = cs + math.Log(0.5)
		case okF:
			mixed.cost[i] = cf + math.Log(0.5)
		}
	}
	return []*candidate{c, mixed}
}
