package hash

import (
	"math"
	"math/rand/v2"
	"testing"
)

func statsNear(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func statsFlow(sport uint16, sent, received int) FlowStats {
	return FlowStats{Tuple: tuple(sport), Sent: sent, Received: received, Lost: sent - received}
}

func TestClassifyWithLoss(t *testing.T) {
	cases := []struct {
		name           string
		sent, received int
		loss, alpha    float64
		want           State
	}{
		{"all answered", 3, 3, 0.2, 0.01, StateOK},
		{"single answered", 1, 1, 0, 0.01, StateOK},
		{"some answered", 3, 1, 0.01, 0.01, StateFlaky},
		{"clean network, all lost", 2, 0, 0.001, 0.01, StateFail},
		{"20% loss, 2 probes: 0.04 >= 0.01, bad luck", 2, 0, 0.2, 0.01, StateFlaky},
		{"20% loss, 3 probes: 0.008 < 0.01", 3, 0, 0.2, 0.01, StateFail},
		{"10% loss, 2 probes: 0.01 is not below 0.01", 2, 0, 0.1, 0.01, StateFlaky},
		{"loss 0 means face value", 1, 0, 0, 0.01, StateFail},
		{"NaN loss means face value", 2, 0, math.NaN(), 0.01, StateFail},
		{"loss above 1 is clamped", 5, 0, 1.5, 0.01, StateFlaky},
		{"negative loss is clamped", 1, 0, -0.3, 0.01, StateFail},
		{"alpha 0 means default", 3, 0, 0.2, 0, StateFail},
		{"alpha 1 means default", 2, 0, 0.2, 1, StateFlaky},
		{"looser alpha", 2, 0, 0.2, 0.05, StateFail},
		{"nothing sent: no evidence", 0, 0, 0, 0.01, StateError},
		{"more received than sent", 2, 3, 0.1, 0.01, StateOK},
	}
	for _, c := range cases {
		if got := ClassifyWithLoss(c.sent, c.received, c.loss, c.alpha); got != c.want {
			t.Errorf("%s: ClassifyWithLoss(%d, %d, %v, %v) = %s, want %s",
				c.name, c.sent, c.received, c.loss, c.alpha, got, c.want)
		}
	}
}

func TestClassifyBackgroundLoss(t *testing.T) {
	many := func(n, sent, received int) []FlowStats {
		out := make([]FlowStats, n)
		for i := range out {
			out[i] = statsFlow(uint16(30000+i), sent, received)
		}
		return out
	}
	cases := []struct {
		name  string
		stats []FlowStats
		want  float64
	}{
		{"empty", nil, 0},
		{"every port dead: nothing to measure", many(5, 3, 0), 0},
		{"clean: small, not zero", many(72, 2, 2), 0.5 / 145},
		{"dead ports excluded", append(many(10, 2, 2), many(3, 2, 0)...), 0.5 / 21},
		{"one lost of 20", append(many(9, 2, 2), statsFlow(1, 2, 1)), 1.5 / 21},
		{"unsent ports ignored", append(many(4, 1, 1), statsFlow(1, 0, 0)), 0.5 / 5},
	}
	for _, c := range cases {
		if got := BackgroundLoss(c.stats); !statsNear(got, c.want, 1e-12) {
			t.Errorf("%s: BackgroundLoss = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestClassifyAll(t *testing.T) {
	// 20 ports x 2 probes; 2 of them lose one probe (loss 2.5/39), 1 loses both.
	var stats []FlowStats
	for i := range 17 {
		stats = append(stats, statsFlow(uint16(i), 2, 2))
	}
	stats = append(stats, statsFlow(100, 2, 1), statsFlow(101, 2, 1), statsFlow(102, 2, 0))
	states, p := ClassifyAll(stats, 0.01)
	if !statsNear(p, 2.5/39, 1e-12) {
		t.Fatalf("p = %v, want %v", p, 2.5/39)
	}
	want := map[State]int{StateOK: 17, StateFlaky: 2, StateFail: 1}
	got := map[State]int{}
	for _, s := range states {
		got[s]++
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d ports, want %d (%v)", k, got[k], v, states)
		}
	}
	if states[19] != StateFail {
		t.Errorf("all-lost port: %s, want fail", states[19])
	}
	// Heavy loss: the all-lost port is bad luck.
	stats = stats[:0]
	for i := range 10 {
		stats = append(stats, statsFlow(uint16(i), 2, 1), statsFlow(uint16(100+i), 2, 2))
	}
	stats = append(stats, statsFlow(200, 2, 0))
	states, p = ClassifyAll(stats, 0)
	if p*p < DefaultAlpha || states[20] != StateFlaky {
		t.Errorf("p = %v, all-lost port %s, want flaky", p, states[20])
	}
	if len(states) != len(stats) {
		t.Errorf("%d states for %d ports", len(states), len(stats))
	}
}

// TestClassifyBinomialSimulation checks the rule on simulated sweeps: a dead
// member's ports always fail, and random loss alone rarely makes one fail.
func TestClassifyBinomialSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sweep := func(ports, count, width int, loss float64) (stats []FlowStats, dead []bool) {
		for i := range ports {
			isDead := width > 0 && rng.IntN(width) == 0
			recv := 0
			if !isDead {
				for range count {
					if rng.Float64() >= loss {
						recv++
					}
				}
			}
			stats = append(stats, statsFlow(uint16(i), count, recv))
			dead = append(dead, isDead)
		}
		return stats, dead
	}
	cases := []struct {
		name        string
		width       int
		count       int
		loss        float64
		maxFalsePer float64 // false fails per healthy port, at most
	}{
		{"clean, dead member of 8", 8, 2, 0, 0},
		{"5% loss, 3 probes, dead member of 16", 16, 3, 0.05, 0.001},
		{"20% loss, 2 probes, no fault: never fail", 0, 2, 0.2, 0},
		{"20% loss, 4 probes, dead member of 4", 4, 4, 0.2, 0.005},
	}
	for _, c := range cases {
		var healthy, falseFail, deadPorts, missed int
		for range 40 {
			stats, dead := sweep(256, c.count, c.width, c.loss)
			states, _ := ClassifyAll(stats, DefaultAlpha)
			for i, s := range states {
				switch {
				case dead[i]:
					deadPorts++
					if s != StateFail {
						missed++
					}
				case s == StateFail && stats[i].Received == 0:
					healthy++
					falseFail++
				default:
					healthy++
				}
			}
		}
		if missed > 0 {
			t.Errorf("%s: %d of %d dead ports not failing", c.name, missed, deadPorts)
		}
		if rate := float64(falseFail) / float64(healthy); rate > c.maxFalsePer {
			t.Errorf("%s: %d of %d healthy ports fail (%.4f > %.4f)", c.name, falseFail, healthy, rate, c.maxFalsePer)
		}
	}
}

func TestWilson(t *testing.T) {
	cases := []struct {
		k, n      int
		z         float64
		low, high float64
	}{
		{0, 10, 1.96, 0, 0.2775401688},
		{5, 10, 1.96, 0.2365895936, 0.7634104064},
		{1, 72, 1.96, 0.0024558886, 0.0745678028},
		{10, 10, 1.96, 0.7224598312, 1},
		{3, 100, 2.576, 0.0076115661, 0.1108831500},
		{0, 0, 1.96, 0, 1},
		{-2, 10, 1.96, 0, 0.2775401688},
		{12, 10, 1.96, 0.7224598312, 1},
		{1, 3, 1.96, 0.0614903153, 0.7923450449},
		{50, 100, 1.96, 0.4038298286, 0.5961701714},
	}
	for _, c := range cases {
		low, high := Wilson(c.k, c.n, c.z)
		if !statsNear(low, c.low, 1e-9) || !statsNear(high, c.high, 1e-9) {
			t.Errorf("Wilson(%d, %d, %v) = [%.10f, %.10f], want [%.10f, %.10f]", c.k, c.n, c.z, low, high, c.low, c.high)
		}
	}
}

func TestClopperPearsonBeta(t *testing.T) {
	// Integer cases from the binomial tail: I_x(a, b) = P(Bin(a+b-1, x) >= a).
	cases := []struct{ x, a, b, want float64 }{
		{0.4, 2, 3, 0.5248},
		{0.3, 5, 5, 0.09880866},
		{0.01, 1, 72, 0.515008629725837},
		{0.35, 10, 20, 0.592386663663905},
		{0.9, 30, 3, 0.36668351908062},
		{0.02, 3, 100, 0.33424982940834},
		{0.45, 100, 100, 0.0783879327122102},
		{0.5, 7, 7, 0.5},
		{0.3, 0.5, 0.5, 2 / math.Pi * math.Asin(math.Sqrt(0.3))}, // arcsine law
		{0.01, 0.5, 0.5, 2 / math.Pi * math.Asin(math.Sqrt(0.01))},
		{0.2, 1, 4.5, 1 - math.Pow(0.8, 4.5)},
		{0.7, 3.5, 1, math.Pow(0.7, 3.5)},
		{0, 2, 3, 0},
		{1, 2, 3, 1},
	}
	for _, c := range cases {
		if got := betaRegularized(c.x, c.a, c.b); !statsNear(got, c.want, 1e-10) {
			t.Errorf("I_%v(%v, %v) = %.15g, want %.15g", c.x, c.a, c.b, got, c.want)
		}
		// Symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
		if got := 1 - betaRegularized(1-c.x, c.b, c.a); !statsNear(got, c.want, 1e-10) {
			t.Errorf("1 - I_%v(%v, %v) = %.15g, want %.15g", 1-c.x, c.b, c.a, got, c.want)
		}
	}
	if v := betaRegularized(0.5, 0, 1); !math.IsNaN(v) {
		t.Errorf("I with a = 0: %v, want NaN", v)
	}
	for _, q := range []float64{0.001, 0.025, 0.5, 0.975, 0.999} {
		x := betaQuantile(q, 3, 70)
		if got := betaRegularized(x, 3, 70); !statsNear(got, q, 1e-12) {
			t.Errorf("I at quantile %v = %v", q, got)
		}
	}
}

func TestClopperPearson(t *testing.T) {
	cases := []struct {
		k, n      int
		conf      float64
		low, high float64
	}{
		// Reference values: bisection on exact binomial tails.
		{0, 10, 0.95, 0, 0.3084971078},
		{5, 10, 0.95, 0.1870860284, 0.8129139716},
		{1, 72, 0.95, 0.0003515744, 0.0749713109},
		{10, 10, 0.95, 0.6915028922, 1},
		{3, 100, 0.99, 0.0034070701, 0.1054812537},
		{7, 256, 0.95, 0.0110627868, 0.0555245905},
		{1, 2, 0.95, 0.0125791171, 0.9874208829},
		{50, 200, 0.9, 0.2001732452, 0.3054673566},
		{36, 72, 0.95, 0.3797571161, 0.6202428839},
		{0, 1, 0.95, 0, 0.975},
		{1, 1, 0.95, 0.025, 1},
		// Degenerate input.
		{0, 0, 0.95, 0, 1},
		{3, 10, 0, 0, 1},
		{3, 10, 1, 0, 1},
		{3, 10, math.NaN(), 0, 1},
		{-1, 10, 0.95, 0, 0.3084971078},
		{11, 10, 0.95, 0.6915028922, 1},
	}
	for _, c := range cases {
		low, high := ClopperPearson(c.k, c.n, c.conf)
		if !statsNear(low, c.low, 1e-9) || !statsNear(high, c.high, 1e-9) {
			t.Errorf("ClopperPearson(%d, %d, %v) = [%.10f, %.10f], want [%.10f, %.10f]",
				c.k, c.n, c.conf, low, high, c.low, c.high)
		}
	}
	// Exact intervals are wider than Wilson's at the edges.
	wl, wh := Wilson(1, 72, 1.96)
	cl, ch := ClopperPearson(1, 72, 0.95)
	if cl > wl || ch < wh {
		t.Errorf("Clopper-Pearson [%v, %v] inside Wilson [%v, %v]", cl, ch, wl, wh)
	}
}

func TestWidthEstimate(t *testing.T) {
	cases := []struct {
		name              string
		failing, ports, k int
		conf              float64
		want              WidthEstimate
		ok                bool
	}{
		{"4 of 72", 4, 72, 1, 0.95, WidthEstimate{8, 18, 65}, true},
		{"half fail: 2 members", 36, 72, 1, 0.95, WidthEstimate{2, 2, 2}, true},
		{"one of 72: wide", 1, 72, 1, 0.95, WidthEstimate{14, 72, 2844}, true},
		{"16 of 256", 16, 256, 1, 0.95, WidthEstimate{11, 16, 27}, true},
		{"badMembers 0 means 1", 16, 256, 0, 0.95, WidthEstimate{11, 16, 27}, true},
		{"2 bad, 32 of 256", 32, 256, 2, 0.95, WidthEstimate{12, 16, 22}, true},
		{"2 bad, half fail: 4", 128, 256, 2, 0.95, WidthEstimate{4, 4, 4}, true},
		{"60 of 72 with 1 bad: too many", 60, 72, 1, 0.95, WidthEstimate{}, false},
		{"60 of 72 with 5 bad", 60, 72, 5, 0.95, WidthEstimate{6, 6, 6}, true},
		{"nothing fails", 0, 72, 1, 0.95, WidthEstimate{}, false},
		{"everything fails", 72, 72, 1, 0.95, WidthEstimate{}, false},
		{"no ports", 0, 0, 1, 0.95, WidthEstimate{}, false},
		{"more failing than ports", 80, 72, 1, 0.95, WidthEstimate{}, false},
		{"bad conf", 4, 72, 1, 1, WidthEstimate{}, false},
	}
	for _, c := range cases {
		got, ok := EstimateWidth(c.failing, c.ports, c.k, c.conf)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: EstimateWidth(%d, %d, %d, %v) = %+v, %v, want %+v, %v",
				c.name, c.failing, c.ports, c.k, c.conf, got, ok, c.want, c.ok)
		}
		if ok && (got.Low > got.Best || (got.High != 0 && (got.Best > got.High || got.Low > got.High))) {
			t.Errorf("%s: %+v is out of order", c.name, got)
		}
	}
	// A precise fraction between two 1/N steps still gives a non-empty interval.
	got, ok := EstimateWidth(4000, 10000, 1, 0.95) // 0.4: between 1/3 and 1/2
	if !ok || got.Low > got.High || got.Low < 2 || got.High > 3 {
		t.Errorf("40%% of 10000: %+v, %v, want within [2, 3]", got, ok)
	}
	// A tiny fraction of a huge sweep has no finite upper bound.
	if got, ok := EstimateWidth(1, 1<<30, 1, 0.95); !ok || got.High != 0 || got.Low < 2 {
		t.Errorf("1 of 2^30: %+v, %v, want unbounded", got, ok)
	}
}

// TestWidthSimulation checks that the 95% width interval brackets the true
// width in at least 93% of simulated sweeps.
func TestWidthSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	const trials = 400
	for _, k := range []int{1, 2} {
		for _, n := range []int{2, 4, 8, 16, 32} {
			if k >= n {
				continue
			}
			var estimated, bracketed, noFault, best int
			for range trials {
				ports := 72 + rng.IntN(256-72+1)
				failing := 0
				for range ports {
					if rng.IntN(n) < k {
						failing++
					}
				}
				if failing == 0 {
					noFault++ // nothing to estimate from; counted apart
					continue
				}
				estimated++
				w, ok := EstimateWidth(failing, ports, k, 0.95)
				if !ok {
					continue // a miss
				}
				if w.Low > w.Best || (w.High != 0 && w.Best > w.High) {
					t.Fatalf("k=%d N=%d: %+v out of order", k, n, w)
				}
				if w.Low <= n && (w.High == 0 || n <= w.High) {
					bracketed++
				}
				if w.Best == n {
					best++
				}
			}
			rate := float64(bracketed) / float64(estimated)
			t.Logf("k=%d N=%2d: bracketed %d/%d (%.3f), best exact %d, no failing port %d",
				k, n, bracketed, estimated, rate, best, noFault)
			if rate < 0.93 {
				t.Errorf("k=%d N=%d: interval brackets N in %.3f of trials, want >= 0.93", k, n, rate)
			}
		}
	}
}

func TestWidthFromNextHops(t *testing.T) {
	cases := []struct {
		d    int
		want WidthEstimate
	}{
		{0, WidthEstimate{}},
		{-1, WidthEstimate{}},
		{1, WidthEstimate{1, 1, 0}},
		{8, WidthEstimate{8, 8, 0}},
	}
	for _, c := range cases {
		if got := WidthFromNextHops(c.d); got != c.want {
			t.Errorf("WidthFromNextHops(%d) = %+v, want %+v", c.d, got, c.want)
		}
	}
	if WidthFromNextHops(0).Valid() || !WidthFromNextHops(3).Valid() {
		t.Error("Valid is wrong")
	}
}

func TestWidthCombine(t *testing.T) {
	cases := []struct {
		name    string
		a, b    WidthEstimate
		want    WidthEstimate
		swapped *WidthEstimate // result of Combine(b, a) when it differs
	}{
		{"both empty", WidthEstimate{}, WidthEstimate{}, WidthEstimate{}, nil},
		{"one empty", WidthEstimate{8, 18, 65}, WidthEstimate{}, WidthEstimate{8, 18, 65}, nil},
		{"next hops raise Low", WidthEstimate{8, 18, 65}, WidthEstimate{12, 12, 0}, WidthEstimate{12, 18, 65}, nil},
		{"next hops above Best", WidthEstimate{11, 16, 27}, WidthEstimate{20, 20, 0}, WidthEstimate{20, 20, 27}, nil},
		{"exact match", WidthEstimate{11, 16, 27}, WidthEstimate{16, 16, 0}, WidthEstimate{16, 16, 27}, nil},
		{"two fractions intersect", WidthEstimate{8, 18, 65}, WidthEstimate{11, 16, 27}, WidthEstimate{11, 16, 27}, nil},
		{"disjoint: span", WidthEstimate{2, 3, 5}, WidthEstimate{8, 8, 0}, WidthEstimate{2, 3, 0}, nil},
		{"disjoint bounded: span", WidthEstimate{2, 3, 4}, WidthEstimate{10, 12, 14}, WidthEstimate{2, 3, 14}, nil},
		{"both unbounded", WidthEstimate{4, 4, 0}, WidthEstimate{6, 6, 0}, WidthEstimate{6, 6, 0},
			&WidthEstimate{6, 6, 0}},
		{"same width: a wins", WidthEstimate{4, 5, 8}, WidthEstimate{5, 7, 9}, WidthEstimate{5, 5, 8},
			&WidthEstimate{5, 7, 8}},
		{"malformed input repaired", WidthEstimate{9, 3, 4}, WidthEstimate{5, 5, 0}, WidthEstimate{9, 9, 9}, nil},
	}
	for _, c := range cases {
		got := CombineWidth(c.a, c.b)
		if got != c.want {
			t.Errorf("%s: CombineWidth(%+v, %+v) = %+v, want %+v", c.name, c.a, c.b, got, c.want)
		}
		want := c.want
		if c.swapped != nil {
			want = *c.swapped
		}
		if got := CombineWidth(c.b, c.a); got != want {
			t.Errorf("%s: CombineWidth(%+v, %+v) = %+v, want %+v", c.name, c.b, c.a, got, want)
		}
		if got.High != 0 && got.Low > got.High {
			t.Errorf("%s: Low > High in %+v", c.name, got)
		}
	}
}
