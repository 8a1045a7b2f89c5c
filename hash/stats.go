package hash

import (
	"math"
)

// DefaultAlpha is the per-port significance level of ClassifyWithLoss: a
// port that lost every probe is called failing only when random loss would
// do that less than 1% of the time.
const DefaultAlpha = 0.01

// ClassifyWithLoss is Classify with random loss taken into account. A port
// that answered every probe is ok. A port that answered none is fail only
// when random loss is an implausible explanation: with a per-probe loss p
// measured elsewhere, all sent probes are lost by chance with probability
// p^sent, and the port fails when that is below alpha. Otherwise (some
// answers, or all lost but p^sent >= alpha, "could be bad luck") it is
// flaky. With 20% background loss and 2 probes, 0.2^2 = 0.04 >= 0.01: flaky.
//
// A port with nothing sent is error: no probe left the host, so it carries
// no evidence about the path either way. alpha outside (0, 1) means
// DefaultAlpha. loss is clamped into [0, 1]; NaN counts as 0, which takes
// an all-lost port at face value, as Classify does.
//
// alpha is a per-port level: over many all-lost ports of a lossy path some
// will pass by chance (256 ports at p = 0.05 and 2 probes expect 0.64 such
// ports). A caller wanting a bound over the whole sweep can pass
// alpha/ports (Bonferroni).
func ClassifyWithLoss(sent, received int, loss float64, alpha float64) State {
	switch {
	case sent <= 0:
		return StateError
	case received >= sent:
		return StateOK
	case received > 0:
		return StateFlaky
	}
	if chanceAllLost(sent, loss) < normAlpha(alpha) {
		return StateFail
	}
	return StateFlaky
}

// chanceAllLost is p^sent, the probability that random loss alone drops
// every one of sent probes.
func chanceAllLost(sent int, loss float64) float64 {
	if math.IsNaN(loss) {
		loss = 0
	}
	loss = min(max(loss, 0), 1)
	return math.Pow(loss, float64(max(sent, 0)))
}

func normAlpha(alpha float64) float64 {
	if !(alpha > 0 && alpha < 1) {
		return DefaultAlpha
	}
	return alpha
}

// BackgroundLoss estimates the per-probe random loss from the ports that
// answered at least once; ports with no answer are left out, as they are
// the suspects. The estimate is (lost + 1/2) / (sent + 1) over those ports,
// the mean of the Jeffreys posterior Beta(lost+1/2, sent-lost+1/2): a
// perfectly clean network gives a small positive p (0.5/145 for 72 ports
// and 2 probes) rather than exactly 0, so a claim "random loss cannot
// explain this" never rests on a measured zero, and little data gives a
// larger p (fewer, more cautious fail verdicts). Unreachable replies count
// as lost, as in the sweep's loss fraction.
//
// With no answering port there is nothing to measure and the result is 0:
// all-lost ports are then taken at face value (every port failing is the
// target-down case, which loss cannot be measured against).
//
// Leaving out the all-lost ports also leaves out healthy ports that were
// unlucky, so the estimate is low by a factor (1-p^(c-1))/(1-p^c) for c
// probes per port: 1/(1+p) for c = 2, under 10% at p = 0.1. Near the
// decision boundary (p^c ≈ alpha) that shifts the threshold by less than
// the sampling noise of a sweep, so the estimate is used uncorrected.
func BackgroundLoss(stats []FlowStats) (p float64) {
	var sent, lost int
	for _, s := range stats {
		if s.Received <= 0 || s.Sent <= 0 {
			continue
		}
		sent += s.Sent
		lost += max(s.Sent-s.Received, 0)
	}
	if sent == 0 {
		return 0
	}
	return (float64(lost) + 0.5) / (float64(sent) + 1)
}

// ClassifyAll classifies every port with ClassifyWithLoss against the
// background loss of the whole set, which it also returns.
func ClassifyAll(stats []FlowStats, alpha float64) (states []State, p float64) {
	p = BackgroundLoss(stats)
	states = make([]State, len(stats))
	for i, s := range stats {
		states[i] = ClassifyWithLoss(s.Sent, s.Received, p, alpha)
	}
	return states, p
}

// Wilson is the Wilson score interval of a proportion with k successes out
// of n at the normal quantile z (1.96 for 95%). With no trials it is the
// whole [0, 1]; k is clamped into [0, n].
func Wilson(k, n int, z float64) (low, high float64) {
	if n <= 0 {
		return 0, 1
	}
	k = min(max(k, 0), n)
	nf := float64(n)
	p := float64(k) / nf
	z2 := z * z
	den := 1 + z2/nf
	center := (p + z2/(2*nf)) / den
	half := z * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf)) / den
	low, high = max(0, center-half), min(1, center+half)
	if k == 0 {
		low = 0
	}
	if k == n {
		high = 1
	}
	return low, high
}

// ClopperPearson is the exact (Clopper-Pearson) interval of a proportion
// with k successes out of n at confidence conf (0.95 for 95%): low is the
// alpha/2 quantile of Beta(k, n-k+1) and high the 1-alpha/2 quantile of
// Beta(k+1, n-k), alpha = 1-conf; low is 0 when k = 0 and high is 1 when
// k = n. It covers the true proportion with probability at least conf for
// every n, unlike Wilson, which is closer to conf on average but can
// fall below it. With no trials, or conf outside (0, 1), it is the whole
// [0, 1]; k is clamped into [0, n].
func ClopperPearson(k, n int, conf float64) (low, high float64) {
	if n <= 0 || !(conf > 0 && conf < 1) {
		return 0, 1
	}
	k = min(max(k, 0), n)
	a := (1 - conf) / 2
	low, high = 0, 1
	if k > 0 {
		low = betaQuantile(a, float64(k), float64(n-k+1))
	}
	if k < n {
		high = betaQuantile(1-a, float64(k+1), float64(n-k))
	}
	return low, high
}

// betaRegularized is the regularized incomplete beta function I_x(a, b),
// the CDF of Beta(a, b) at x, for a, b > 0. It evaluates the continued
// fraction of Numerical Recipes (betai/betacf), on the side of the mean
// where it converges fast, using I_x(a, b) = 1 - I_{1-x}(b, a).
func betaRegularized(x, a, b float64) float64 {
	switch {
	case math.IsNaN(x) || math.IsNaN(a) || math.IsNaN(b) || a <= 0 || b <= 0:
		return math.NaN()
	case x <= 0:
		return 0
	case x >= 1:
		return 1
	}
	lab, _ := math.Lgamma(a + b)
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	front := math.Exp(lab - la - lb + a*math.Log(x) + b*math.Log1p(-x))
	if x < (a+1)/(a+b+2) {
		return front * betaContinuedFraction(x, a, b) / a
	}
	return 1 - front*betaContinuedFraction(1-x, b, a)/b
}

// betaContinuedFraction evaluates the continued fraction of I_x(a, b) by
// the modified Lentz method.
func betaContinuedFraction(x, a, b float64) float64 {
	const (
		maxIter = 10000
		eps     = 1e-15
		tiny    = 1e-300
	)
	clampTiny := func(v float64) float64 {
		if math.Abs(v) < tiny {
			return tiny
		}
		return v
	}
	qab, qap, qam := a+b, a+1, a-1
	c := 1.0
	d := 1 / clampTiny(1-qab*x/qap)
	h := d
	for m := 1; m <= maxIter; m++ {
		mf := float64(m)
		m2 := 2 * mf
		// Even step.
		aa := mf * (b - mf) * x / ((qam + m2) * (a + m2))
		d = 1 / clampTiny(1+aa*d)
		c = clampTiny(1 + aa/c)
		h *= d * c
		// Odd step.
		aa = -(a + mf) * (qab + mf) * x / ((a + m2) * (qap + m2))
		d = 1 / clampTiny(1+aa*d)
		c = clampTiny(1 + aa/c)
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return h
}

// betaQuantile is the x with I_x(a, b) = q, by bisection: I_x is monotone
// in x, so bisection is slow-ish (about 50 evaluations) but cannot
// diverge, which matters more here than speed.
func betaQuantile(q, a, b float64) float64 {
	switch {
	case q <= 0:
		return 0
	case q >= 1:
		return 1
	}
	lo, hi := 0.0, 1.0
	for range 200 {
		mid := (lo + hi) / 2
		if mid == lo || mid == hi {
			break
		}
		if betaRegularized(mid, a, b) < q {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// WidthEstimate is an estimate of the number of members of an ECMP group:
// an interval [Low, High] and a best guess. High 0 means no upper bound;
// the zero value means no estimate.
type WidthEstimate struct {
	Low, Best, High int
}

// Valid reports whether the estimate says anything.
func (w WidthEstimate) Valid() bool { return w.Low > 0 }

// maxWidthBound caps upper bounds; anything larger is reported as
// unbounded (High 0). Real ECMP groups are far narrower.
const maxWidthBound = 1 << 20

// EstimateWidth estimates the ECMP width N from failing of ports source
// ports failing on every try, assuming badMembers (k, default 1 when < 1)
// of the N members drop their flows and the hash spreads ports evenly, so
// that a port fails with probability k/N.
//
// With [fl, fh] the Clopper-Pearson interval of failing/ports at conf, the
// widths consistent with the data are the integers N with k/N in
// [fl, fh], that is ceil(k/fh) <= N <= floor(k/fl). When no integer lies
// there (a precise fraction between two 1/N steps: uneven hashing or
// another k) the interval widens to the integers on either side,
// floor(k/fh) and ceil(k/fl), so it is never empty. Low is then raised to
// at least k+1 and 2: some ports answered, so at least one member is good.
// Best is round(k*ports/failing), the width whose fraction is nearest the
// observed one, clamped into [Low, High]. High is 0 (unbounded) when k/fl
// exceeds 2^20.
//
// There is no estimate (false) when nothing fails (no fault to measure),
// when every port fails (not an ECMP fault), when more ports fail than k
// bad members can explain (k/fl < k+1: even N = k+1 is too wide; try a
// larger badMembers), for ports < 1, failing > ports, or conf outside
// (0, 1).
func EstimateWidth(failing, ports int, badMembers int, conf float64) (WidthEstimate, bool) {
	if ports <= 0 || failing <= 0 || failing >= ports || !(conf > 0 && conf < 1) {
		return WidthEstimate{}, false
	}
	k := max(badMembers, 1)
	kf := float64(k)
	fl, fh := ClopperPearson(failing, ports, conf)
	// fl > 0 since failing > 0, and fh < 1 since failing < ports.
	const slack = 1e-9 // float noise when k/f is an integer
	lowF, highF := kf/fh, kf/fl
	if highF+slack < kf+1 {
		// Even N = k+1 fails too few ports: more than k members are bad.
		return WidthEstimate{}, false
	}
	low := int(math.Ceil(lowF - slack))
	high := 0
	if highF <= maxWidthBound {
		high = int(math.Floor(highF + slack))
		if high < low {
			low = int(math.Floor(lowF + slack))
			high = int(math.Ceil(highF - slack))
		}
	}
	low = max(low, k+1, 2)
	if high != 0 && high < low {
		high = low
	}
	best := max(int(math.Round(kf*float64(ports)/float64(failing))), low)
	if high != 0 {
		best = min(best, high)
	}
	return WidthEstimate{Low: low, Best: best, High: high}, true
}

// WidthFromNextHops is what a trace that saw distinct next hops at the ECMP
// stage says: the group has at least that many members, and nothing about
// an upper bound (High 0). distinct < 1 gives no estimate.
func WidthFromNextHops(distinct int) WidthEstimate {
	if distinct < 1 {
		return WidthEstimate{}
	}
	return WidthEstimate{Low: distinct, Best: distinct, High: 0}
}

// CombineWidth merges two estimates of the same width. If only one is
// valid it is returned. Otherwise the result is the intersection of the
// intervals (larger Low, smaller finite High), and Best is the more
// precise input's Best (the narrower finite interval; an unbounded one is
// the least precise; a on ties) clamped into it. When the intervals do not
// overlap the evidence disagrees (more bad members than assumed, uneven
// hashing, a route change between the measurements) and the result is the
// span of both instead, so Low never exceeds High.
func CombineWidth(a, b WidthEstimate) WidthEstimate {
	a, b = normWidth(a), normWidth(b)
	switch {
	case !a.Valid():
		return b
	case !b.Valid():
		return a
	}
	precise := a
	if narrower(b, a) {
		precise = b
	}
	low := max(a.Low, b.Low)
	high := minBound(a.High, b.High)
	if high != 0 && low > high {
		// Disjoint: span both.
		low = min(a.Low, b.Low)
		high = 0
		if a.High != 0 && b.High != 0 {
			high = max(a.High, b.High)
		}
	}
	best := max(precise.Best, low)
	if high != 0 {
		best = min(best, high)
	}
	return WidthEstimate{Low: low, Best: best, High: high}
}

// normWidth repairs a hand-made estimate: High below Low becomes Low, and
// Best is clamped into the interval.
func normWidth(w WidthEstimate) WidthEstimate {
	if !w.Valid() {
		return WidthEstimate{}
	}
	if w.High < 0 {
		w.High = 0
	}
	if w.High != 0 && w.High < w.Low {
		w.High = w.Low
	}
	w.Best = max(w.Best, w.Low)
	if w.High != 0 {
		w.Best = min(w.Best, w.High)
	}
	return w
}

// narrower reports whether x's interval is strictly narrower than y's,
// with unbounded intervals the widest.
func narrower(x, y WidthEstimate) bool {
	switch {
	case x.High == 0:
		return false
	case y.High == 0:
		return true
	}
	return x.High-x.Low < y.High-y.Low
}

// minBound is the smaller of two upper bounds where 0 means unbounded.
func minBound(x, y int) int {
	switch {
	case x == 0:
		return y
	case y == 0:
		return x
	}
	return min(x, y)
}
