package hash

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestPortsForConfidence(t *testing.T) {
	cases := []struct {
		conf  float64
		width int
		want  int
	}{
		{0.99, 2, 7},     // 6.64
		{0.95, 4, 11},    // 10.41
		{0.99, 8, 35},    // 34.49
		{0.99, 16, 72},   // 71.36
		{0.999, 32, 218}, // 217.58
		{0.75, 2, 2},     // exactly 2
		{0.5, 2, 1},      // exactly 1
		{0.9, 10, 22},    // 21.85
		{0.95, 64, 191},  // 190.23
		{0.99, 128, 588}, // 587.16
	}
	for _, c := range cases {
		got, err := PortsForConfidence(c.conf, c.width)
		if err != nil || got != c.want {
			t.Errorf("PortsForConfidence(%v, %d) = %d, %v, want %d", c.conf, c.width, got, err, c.want)
			continue
		}
		// got is the least n with (1-1/W)^n <= 1-C.
		miss := 1 - 1/float64(c.width)
		if math.Pow(miss, float64(got)) > 1-c.conf+1e-12 || math.Pow(miss, float64(got-1)) <= 1-c.conf-1e-12 {
			t.Errorf("PortsForConfidence(%v, %d) = %d is not the least n", c.conf, c.width, got)
		}
	}
	bad := []struct {
		conf  float64
		width int
	}{{0, 16}, {1, 16}, {-0.5, 16}, {1.5, 16}, {math.NaN(), 16}, {0.99, 1}, {0.99, 0}, {0.99, -4}}
	for _, c := range bad {
		if got, err := PortsForConfidence(c.conf, c.width); err == nil {
			t.Errorf("PortsForConfidence(%v, %d) = %d, want an error", c.conf, c.width, got)
		}
	}
}

func TestRepeatsForLoss(t *testing.T) {
	cases := []struct {
		loss, alpha float64
		max         int
		want        int
	}{
		{0, 0.01, 10, 2},          // never fewer than 2
		{0.01, 0.01, 10, 2},       // 1e-4
		{0.1, 0.01, 10, 3},        // 0.01 is not below 0.01
		{0.2, 0.01, 10, 3},        // 0.04, 0.008
		{0.3, 0, 10, 4},           // default alpha: 0.027, 0.0081
		{0.5, 0.01, 10, 7},        // 0.5^7 = 0.0078
		{0.5, 0.01, 5, 5},         // capped
		{0.2, 0.001, 10, 5},       // 0.0016, 0.00032
		{0.9, 0.01, 0, 10},        // cap 0 means DefaultMaxRepeats
		{1, 0.01, 6, 6},           // hopeless: the cap
		{math.NaN(), 0.01, 6, 6},  // unknown: the cap
		{0.01, 0.01, 1, 1},        // a cap of 1 is honoured
		{-0.2, 0.01, 10, 2},       // negative loss is no loss
		{0.05, 0.01 / 72, 10, 3},  // Bonferroni over 72 ports: 1.25e-4 < 1.39e-4
		{0.05, 0.01 / 256, 10, 4}, // 0.05^4 = 6.25e-6 < 3.9e-5
	}
	for _, c := range cases {
		if got := RepeatsForLoss(c.loss, c.alpha, c.max); got != c.want {
			t.Errorf("RepeatsForLoss(%v, %v, %d) = %d, want %d", c.loss, c.alpha, c.max, got, c.want)
		}
	}
}

func TestPlanMake(t *testing.T) {
	p, err := MakePlan(0.99, 16, 0.2, 0.01, 10)
	if err != nil {
		t.Fatal(err)
	}
	if p.Ports != 72 || p.Repeats != 3 || p.Confidence != 0.99 || p.MaxWidth != 16 {
		t.Errorf("MakePlan = %+v", p)
	}
	for _, want := range []string{"72 ports", "up to 16", "99% confidence", "3 probes", "20% loss", "0.2^3 < 0.01"} {
		if !strings.Contains(p.Reason, want) {
			t.Errorf("reason %q lacks %q", p.Reason, want)
		}
	}
	p, err = MakePlan(0.95, 8, 0.9, 0.01, 4)
	if err != nil || p.Repeats != 4 || !strings.Contains(p.Reason, "cannot tell") {
		t.Errorf("hopeless loss: %+v, %v", p, err)
	}
	for _, c := range []struct {
		conf  float64
		width int
		loss  float64
	}{{1, 16, 0}, {0.99, 1, 0}, {0.99, 16, -0.1}, {0.99, 16, 1.1}, {0.99, 16, math.NaN()}} {
		if _, err := MakePlan(c.conf, c.width, c.loss, 0.01, 10); err == nil {
			t.Errorf("MakePlan(%v, %d, %v): no error", c.conf, c.width, c.loss)
		}
	}
}

func planPorts(n, sent, received int) []FlowStats {
	out := make([]FlowStats, n)
	for i := range out {
		out[i] = statsFlow(uint16(30000+i), sent, received)
	}
	return out
}

func TestSettled(t *testing.T) {
	plan := Plan{Ports: 4, Repeats: 2}
	cat := func(parts ...[]FlowStats) []FlowStats {
		var out []FlowStats
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	cases := []struct {
		name   string
		stats  []FlowStats
		plan   Plan
		want   bool
		reason string
	}{
		{"too few ports", planPorts(3, 2, 2), plan, false, "3 of 4 planned ports"},
		{"a port short of repeats", cat(planPorts(4, 2, 2), planPorts(1, 1, 1)), plan, false, "1 port has fewer than 2 probes"},
		{"nothing sent on a port", cat(planPorts(4, 2, 2), planPorts(2, 0, 0)), plan, false, "2 ports have fewer"},
		{"all ok", planPorts(10, 2, 2), plan, true, "10 ok, 0 fail, 0 flaky"},
		{"clean with a dead port", cat(planPorts(10, 2, 2), planPorts(1, 2, 0)), plan, true, "10 ok, 1 fail"},
		{"lossy: all-lost port is undecided", cat(planPorts(10, 2, 1), planPorts(10, 2, 2), planPorts(1, 2, 0)), plan, false,
			"1 port lost every probe but 25.6% background loss could explain it (0.256^2 >= 0.01)"},
		{"lossy, suspect probed more: fail", cat(planPorts(10, 2, 1), planPorts(10, 2, 2), planPorts(1, 5, 0)), plan, true,
			"10 ok, 1 fail, 10 flaky"},
		{"flaky ports with answers are decided", cat(planPorts(10, 2, 1), planPorts(10, 2, 2)), plan, true, "0 fail, 10 flaky"},
		{"more repeats planned", cat(planPorts(10, 2, 2), planPorts(1, 2, 0)), Plan{Ports: 4, Repeats: 3}, false, "11 ports have fewer than 3"},
		{"every port dead: target down is settled", planPorts(5, 2, 0), plan, true, "0 ok, 5 fail"},
		{"zero plan: one probe each", planPorts(3, 1, 1), Plan{}, true, "settled"},
	}
	for _, c := range cases {
		got, reason := Settled(c.stats, c.plan, DefaultAlpha)
		if got != c.want || !strings.Contains(reason, c.reason) {
			t.Errorf("%s: Settled = %v, %q; want %v, %q", c.name, got, reason, c.want, c.reason)
		}
	}
}

// TestSettledSimulation runs the loop an engine would: probe the planned
// ports Repeats times, then probe the undecided ports once more per round
// until Settled or a cap. Dead ports must end failing, within the cap.
func TestSettledSimulation(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	const maxRepeats = 10
	cases := []struct {
		name  string
		width int // 0: no dead member
		loss  float64
	}{
		{"clean, dead member of 16", 16, 0},
		{"5% loss, dead member of 8", 8, 0.05},
		{"20% loss, dead member of 4", 4, 0.2},
		{"20% loss, no fault", 0, 0.2},
	}
	for _, c := range cases {
		plan, err := MakePlan(0.99, 16, 0, DefaultAlpha, maxRepeats) // loss unknown up front
		if err != nil {
			t.Fatal(err)
		}
		for trial := range 20 {
			stats := make([]FlowStats, plan.Ports)
			dead := make([]bool, plan.Ports)
			probe := func(i int) {
				stats[i].Sent++
				if !dead[i] && rng.Float64() >= c.loss {
					stats[i].Received++
				}
			}
			for i := range stats {
				stats[i].Tuple = tuple(uint16(40000 + i))
				dead[i] = c.width > 0 && rng.IntN(c.width) == 0
				for range plan.Repeats {
					probe(i)
				}
			}
			rounds := plan.Repeats
			for ; rounds < maxRepeats; rounds++ {
				if ok, _ := Settled(stats, plan, DefaultAlpha); ok {
					break
				}
				for i := range stats {
					if stats[i].Received == 0 {
						probe(i)
					}
				}
			}
			ok, reason := Settled(stats, plan, DefaultAlpha)
			if !ok {
				t.Errorf("%s #%d: not settled after %d rounds: %s", c.name, trial, rounds, reason)
			}
			states, _ := ClassifyAll(stats, DefaultAlpha)
			for i, s := range states {
				if dead[i] && s != StateFail {
					t.Errorf("%s #%d: dead port %d is %s (%+v)", c.name, trial, i, s, stats[i])
				}
			}
		}
	}
}
