package report

import (
	"maps"
	"math"
	"net/netip"
	"slices"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// rlFlow is a healthy flow reaching the destination at TTL 3, with the
// given answers of 2 probes at TTLs 1 and 2.
func rlFlow(sport uint16, a1, a2 int) FlowTrace {
	hop := func(ttl, answers int) TraceHop {
		h := TraceHop{TTL: ttl, Probes: 2, Answers: answers}
		if answers > 0 {
			h.Addr, h.ICMPType = src, 11
		}
		return h
	}
	return FlowTrace{Sport: sport, State: hash.StateOK, Sent: 2, Received: 2, ReachedTTL: 3,
		Hops: []TraceHop{hop(1, a1), hop(2, a2), {TTL: 3, Addr: target.Addr(), Probes: 2, Answers: 2, Reached: true}}}
}

func TestRateLimitedTTLs(t *testing.T) {
	var flows []FlowTrace
	for i := range 12 {
		// TTL 1 answers one probe of two, on a third of the flows (a
		// router that ran out of answers); TTL 2 answers all, but one
		// router in four is silent by configuration.
		a1, a2 := 0, 2
		if i%3 == 0 {
			a1 = 1
		}
		if i%4 == 0 {
			a2 = 0
		}
		flows = append(flows, rlFlow(uint16(30000+i), a1, a2))
	}
	if got := RateLimitedTTLs(flows); !slices.Equal(got, []int{1}) {
		t.Errorf("rate-limited TTLs %v, want [1]", got)
	}
	// One probe per hop cannot show it; nor can two partial hops.
	for i := range flows {
		for j := range flows[i].Hops {
			flows[i].Hops[j].Probes = 1
			flows[i].Hops[j].Answers = min(flows[i].Hops[j].Answers, 1)
		}
	}
	if got := RateLimitedTTLs(flows); len(got) != 0 {
		t.Errorf("with one probe per hop: %v, want none", got)
	}
	few := []FlowTrace{rlFlow(1, 1, 2), rlFlow(2, 1, 2), rlFlow(3, 0, 2)}
	if got := RateLimitedTTLs(few); len(got) != 0 {
		t.Errorf("two partial hops: %v, want none", got)
	}
}

// Holes probed again: healthy holes answered 4 times in 24 probes more, so
// a failing flow's hole that got 3 more and no answer is (1-4.5/25)^3 as
// likely from a router it reached, on top of the first pass's silence.
func TestRetriedSilenceWeighsByProbes(t *testing.T) {
	var flows []FlowTrace
	for i := range 12 {
		f := rlFlow(uint16(30000+i), 0, 2)
		switch {
		case i%3 == 0:
			f.Hops[0].Answers, f.Hops[0].Addr = 1, src // the first pass's burst
		case i%3 == 1:
			f.Hops[0].Probes, f.Hops[0].Answers, f.Hops[0].Addr = 5, 1, src // answered when probed again
		default:
			f.Hops[0].Probes = 5 // probed again, still silent
		}
		flows = append(flows, f)
	}
	fail := rlFlow(40000, 0, 0)
	fail.State, fail.Received, fail.ReachedTTL = hash.StateFail, 0, 0
	fail.Hops = fail.Hops[:2]
	fail.Hops[0].Probes = 5
	a := newAnalysis(append(flows, fail))
	e := a.evidence(Sample{})
	r, ok := e.retry[1]
	if !ok || r.first != 2 {
		t.Fatalf("retry rates %+v: want TTL 1, 2 probes in the first pass", e.retry)
	}
	if want := math.Log1p(-4.5 / 25); math.Abs(r.miss-want) > 1e-9 {
		t.Errorf("miss %.4f, want %.4f (4 answers in 24 probes again)", r.miss, want)
	}
	i := slices.IndexFunc(a.flows, func(f FlowTrace) bool { return f.Sport == 40000 })
	with, _ := e.hopCost(i, 1)
	a.flows[i].Hops[0].Probes = 2
	e = a.evidence(Sample{})
	without, _ := e.hopCost(i, 1)
	if d := with - without; math.Abs(d-3*r.miss) > 1e-9 {
		t.Errorf("a hole probed 3 times more costs %.4f more, want %.4f", d, 3*r.miss)
	}
	// The first pass's silence counts the holes answered only when probed
	// again: 8 of 12 healthy flows, not the 4 still silent.
	if got, want := e.silentShare(srcNode, silentID(srcNode, 1), false), math.Log(8.5/13); math.Abs(got-want) > 1e-9 {
		t.Errorf("first-pass silence %.4f, want %.4f", got, want)
	}
}

// A failing flow that no hop answered, where healthy flows too are silent
// at every router (rate limits): it may have got as far as they do, and
// the answers alone be lost, as much as it may have died at the first
// hop. Before, only forward faults could explain it.
func TestSilentFlowsExplainedByTheAnswersAlone(t *testing.T) {
	var flows []FlowTrace
	for i := range 24 {
		a := 1
		if i%2 == 0 {
			a = 0 // silent at both routers, as half the flows are
		}
		f := rlFlow(uint16(30000+i), a, a)
		if a > 0 {
			f.Hops[0].Addr, f.Hops[1].Addr = netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("198.19.1.1")
		}
		if i%4 < 2 {
			f.State, f.Received, f.ReachedTTL = hash.StateFail, 0, 0
			f.Hops = append(f.Hops[:2], TraceHop{TTL: 3, Probes: 2}, TraceHop{TTL: 4, Probes: 2})
		}
		flows = append(flows, f)
	}
	for _, h := range Diagnose(flows).Hypotheses {
		if h.Kind == HypReturnPath && h.And == nil {
			if h.Explains != 12 {
				t.Errorf("the answers alone explain %d of 12 failing flows, half of them silent at every hop", h.Explains)
			}
			return
		}
	}
	t.Error("no answers-alone hypothesis")
}

// A second look's flows were probed once the rate-limited routers had
// earned answers back: pA's three first-pass healthy flows are silent
// twice at r2, the look's three answer there. A first-pass flow's silence
// after pA is weighed against the first pass's (2.5 in 4), a look's flow's
// against the look's (0.5 in 4), not both together (2.5 in 7).
func TestSilenceWeighedByPass(t *testing.T) {
	const r1, pA, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.99"
	flows := []FlowTrace{
		flowOf(1, hash.StateOK, r1, pA, "*", "="), flowOf(2, hash.StateOK, r1, pA, "*", "="),
		flowOf(3, hash.StateOK, r1, pA, r2, "="),
		flowOf(4, hash.StateOK, r1, pA, r2, "="), flowOf(5, hash.StateOK, r1, pA, r2, "="),
		flowOf(6, hash.StateOK, r1, pA, r2, "="),
		flowOf(7, hash.StateFail, r1, pA, "*", "*"),
	}
	looked := &Looked{Look: Look{TTL: 2, Addrs: []netip.Addr{netip.MustParseAddr(pA)}}, Picked: 3, Unseen: &Untraced{}, Ports: []uint16{4, 5, 6}}
	s := WeighBack(flows, Untraced{}, looked)
	if !maps.Equal(s.Looked, map[uint16]bool{4: true, 5: true, 6: true}) {
		t.Fatalf("sample's looked flows %v, want 4, 5 and 6", s.Looked)
	}
	e := newAnalysis(flows).evidence(s)
	silent := silentID(pA, 1)
	for _, c := range []struct {
		later bool
		want  float64
	}{{false, 2.5 / 4}, {true, 0.5 / 4}} {
		if got := e.silentShare(pA, silent, c.later); math.Abs(got-math.Log(c.want)) > 1e-9 {
			t.Errorf("silence after pA, later %v: %.4f, want log %.4f", c.later, got, c.want)
		}
	}
	if e := newAnalysis(flows).evidence(WeighBack(flows, Untraced{}, nil)); math.Abs(e.silentShare(pA, silent, false)-math.Log(2.5/7)) > 1e-9 {
		t.Errorf("without a look: %.4f, want log %.4f", e.silentShare(pA, silent, false), 2.5/7)
	}
}

// Where the routers at a TTL rate-limit their errors, a flow silent there
// crossed each of them as often as the flows that answered there did: a
// fault right after p1 exposes it by p1's share, and a failing flow it
// explains counts as one that crossed p1. Where they answer every probe, a
// silence there is a router silent by configuration, not p1.
func TestMaybeCrossWhereRoutersRateLimit(t *testing.T) {
	const r1, p1, p2, r2, rx = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.99", "198.18.255.2"
	flows := func(limited bool) []FlowTrace {
		fs := []FlowTrace{
			flowOf(1, hash.StateOK, r1, p1, r2, "="),
			flowOf(2, hash.StateOK, r1, p2, r2, "="),
			flowOf(3, hash.StateOK, r1, p1, r2, "="),
			flowOf(4, hash.StateOK, r1, p2, r2, "="),
			flowOf(5, hash.StateOK, r1, "*", r2, "="),
			flowOf(6, hash.StateOK, r1, p2, r2, "="),
			flowOf(7, hash.StateOK, rx, "*", r2, "="), // no flow leaves rx for p1
			flowOf(10, hash.StateFail, r1, p1, "*", "*"),
			flowOf(11, hash.StateFail, r1, "*", "*", "*"),
		}
		if limited {
			for i := range fs {
				if h := &fs[i].Hops[1]; fs[i].State == hash.StateOK && h.Answers > 0 {
					h.Answers = 1
				}
			}
		}
		return fs
	}
	for _, limited := range []bool{true, false} {
		a := newAnalysis(flows(limited))
		e := a.evidence(Sample{})
		c := a.afterCandidate(e, a.paths[0][2], 2)
		silent := 0.0
		if limited {
			silent = 0.5 // p1 answered 3 of the 6 flows answering at TTL 2
		}
		want := []float64{1, 0, 1, 0, silent, 0, 0, 1, silent}
		if !slices.Equal(c.exposed, want) {
			t.Errorf("rate-limited %v: exposed %v, want %v", limited, c.exposed, want)
		}
		if !limited {
			continue
		}
		e.score(c)
		// Both failing flows explained, the silent one crossing p1: 2 of
		// 3 flows seen at p1, half the silent healthy one and the failing one.
		if math.Abs(c.h.Share-2/4.5) > 1e-9 || c.h.Explains != 2 {
			t.Errorf("share %.4f explaining %d, want %.4f explaining 2", c.h.Share, c.h.Explains, 2/4.5)
		}
	}
}

// The likelihood takes each silent hop as its own chance event. Where
// routers rate-limit, their silences come in bursts in time, but a trace
// probes each TTL's round in an order of its own, so a burst falls on
// flows at random: over the recorded rate-limited traces the healthy
// flows' counts of silent hops at those TTLs spread as independent hops'
// would (README, "How sure is a verdict?"). A dispersion well above 1
// would say the counts are not independent, and the likelihood too sure.
func TestRecordedSilencesSpreadAsIndependent(t *testing.T) {
	skipShort(t)
	sum, n := 0.0, 0
	for _, r := range loadRecorded(t) {
		tr, err := r.decode()
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := silenceDispersion(tr.Flows); ok {
			sum += d
			n++
		}
	}
	mean := sum / float64(max(n, 1))
	t.Logf("Pearson dispersion of silent-hop counts, mean over %d rate-limited traces: %.3f", n, mean)
	if n == 0 || mean > 1.3 {
		t.Errorf("mean dispersion %.3f over %d rate-limited traces, want about 1", mean, n)
	}
}

// silenceDispersion is the Pearson dispersion of the healthy flows' counts
// of silent hops at the rate-limited TTLs, against independent hops each
// silent at its TTL's rate; ok is false where no TTL is rate-limited or
// too few flows are healthy.
func silenceDispersion(flows []FlowTrace) (float64, bool) {
	ttls := RateLimitedTTLs(flows)
	silent := func(f FlowTrace, ttl int) (bool, bool) {
		if f.State != hash.StateOK || ttl > len(f.Hops) || f.Hops[ttl-1].Probes == 0 {
			return false, false
		}
		return f.Hops[ttl-1].Answers == 0, true
	}
	rate := map[int]float64{}
	for _, ttl := range ttls {
		k, m := 0.0, 0.0
		for _, f := range flows {
			if s, ok := silent(f, ttl); ok {
				m++
				if s {
					k++
				}
			}
		}
		rate[ttl] = (k + 0.5) / (m + 1)
	}
	chi, df := 0.0, -len(ttls)
	for _, f := range flows {
		y, mu, v := 0.0, 0.0, 0.0
		for _, ttl := range ttls {
			if s, ok := silent(f, ttl); ok {
				mu += rate[ttl]
				v += rate[ttl] * (1 - rate[ttl])
				if s {
					y++
				}
			}
		}
		if v > 0 {
			chi += (y - mu) * (y - mu) / v
			df++
		}
	}
	if len(ttls) == 0 || df <= 0 {
		return 0, false
	}
	return chi / float64(df), true
}
