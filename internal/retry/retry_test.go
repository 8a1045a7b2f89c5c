package retry

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// flowsOf builds n healthy and n failing flows over three TTLs and the
// destination at TTL 4. At TTL 1 a router that rate-limits answered one
// of two probes of every third flow and nothing else; at TTL 2 one that
// does not answered every probe; TTL 3 is silent by configuration.
func flowsOf(n int) ([]report.FlowTrace, map[uint16]hash.FiveTuple) {
	var flows []report.FlowTrace
	tuples := map[uint16]hash.FiveTuple{}
	for i := range 2 * n {
		sp := uint16(30000 + i)
		tuples[sp] = hash.FiveTuple{Src: netip.MustParseAddr("198.18.1.1"), Dst: netip.MustParseAddr("198.18.2.2"),
			Proto: hash.ProtoTCP, SrcPort: sp, DstPort: 3306}
		f := report.FlowTrace{Sport: sp, State: hash.StateOK, ReachedTTL: 4}
		if i >= n {
			f.State, f.ReachedTTL = hash.StateFail, 0
		}
		h1 := report.TraceHop{TTL: 1, Probes: 2}
		if i%3 == 0 {
			h1.Addr, h1.Answers = netip.MustParseAddr("198.19.0.1"), 1
		}
		h2 := report.TraceHop{TTL: 2, Probes: 2, Addr: netip.MustParseAddr(fmt.Sprintf("198.19.1.%d", 1+i%2)), Answers: 2}
		f.Hops = []report.TraceHop{h1, h2, {TTL: 3, Probes: 2}}
		if f.State == hash.StateOK {
			f.Hops = append(f.Hops, report.TraceHop{TTL: 4, Probes: 2, Answers: 2, Reached: true, Addr: netip.MustParseAddr("198.18.2.2")})
		}
		flows = append(flows, f)
	}
	return flows, tuples
}

func TestPlanHolesAtRateLimitedTTLsOnly(t *testing.T) {
	flows, tuples := flowsOf(12)
	p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(1, 2)))
	if p == nil {
		t.Fatal("no plan; TTL 1 answers one probe of two")
	}
	if fmt.Sprint(p.Retried.TTLs) != "[1]" {
		t.Fatalf("TTLs %v, want [1]: TTL 2 answers every probe, TTL 3 none", p.Retried.TTLs)
	}
	if want := 24 - 8; p.Retried.Holes != want {
		t.Errorf("holes %d, want %d (the flows silent at TTL 1)", p.Retried.Holes, want)
	}
	// One address answered at TTL 1: one probe a round, failing and
	// healthy flows taken in turn.
	states := map[uint16]hash.State{}
	for _, f := range flows {
		states[f.Sport] = f.State
	}
	count := map[hash.State]int{}
	for repeat := 2; repeat < 6; repeat++ {
		round := p.Next(repeat)
		if len(round) != 1 {
			t.Fatalf("a round of %d probes, want 1", len(round))
		}
		if pr := round[0]; pr.TTL != 1 || pr.Repeat != repeat || pr.Kind != probe.KindTCPSYN {
			t.Errorf("probe %+v: want TTL 1, repeat %d, a SYN", pr, repeat)
		}
		count[states[round[0].Tuple.SrcPort]]++
	}
	if count[hash.StateOK] == 0 || count[hash.StateFail] == 0 {
		t.Errorf("four rounds probed %v: want failing and healthy flows", count)
	}
}

func TestPlanNoneWithoutRateLimits(t *testing.T) {
	flows, tuples := flowsOf(12)
	for i := range flows {
		if flows[i].Hops[0].Answers > 0 {
			flows[i].Hops[0].Answers = 2
		}
	}
	if p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(1, 2))); p != nil {
		t.Fatalf("plan at TTLs %v where every hop answered all or none of its probes", p.Retried.TTLs)
	}
}

func TestSettleStopsATTLAfterAWholeTurnBringsNothing(t *testing.T) {
	flows, tuples := flowsOf(12)
	p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(1, 2)))
	got := p.Next(2)
	answered := func(sp uint16, ttl int) bool { return sp == got[0].Tuple.SrcPort && ttl == 1 }
	p.Settle(answered, len(got))
	if p.Done() || p.Retried.Answers != 1 || p.Retried.Rounds != 1 {
		t.Fatalf("after one answer: done %v, %+v", p.Done(), p.Retried)
	}
	// One probe a round (one address answered at TTL 1): every one of the
	// holes left is probed once more, and only then is the TTL given up.
	left := p.Retried.Holes - 1
	probed := map[uint16]int{}
	for repeat := 3; repeat < 3+left; repeat++ {
		if p.Done() {
			t.Fatalf("given up after %d dry rounds, before every one of the %d holes left was probed again: %v", repeat-3, left, probed)
		}
		round := p.Next(repeat)
		for _, pr := range round {
			probed[pr.Tuple.SrcPort]++
		}
		p.Settle(answered, len(round))
	}
	if !p.Done() {
		t.Errorf("a whole turn over TTL 1's holes brought nothing and should end it: %+v", p.Retried)
	}
	for sp, n := range probed {
		if n != 1 {
			t.Errorf("hole %d probed %d times in the turn, want once", sp, n)
		}
	}
	if len(probed) != left {
		t.Errorf("%d holes probed in the turn, want %d", len(probed), left)
	}
}

func TestBudgetBoundsProbes(t *testing.T) {
	flows, tuples := flowsOf(12)
	p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(1, 2)))
	p.quota[1] = 5
	p.Budget = 7
	n, probed := 0, map[uint16]bool{}
	for repeat := 2; !p.Done(); repeat++ {
		round := p.Next(repeat)
		n += len(round)
		for _, pr := range round {
			probed[pr.Tuple.SrcPort] = true
		}
		p.Settle(func(sp uint16, _ int) bool { return probed[sp] }, len(round))
		if repeat > 10 {
			t.Fatal("no end")
		}
	}
	if n != 7 {
		t.Errorf("%d probes sent again, want the budget, 7", n)
	}
}

// tickClock ticks when the test says so.
type tickClock struct {
	now  time.Time
	tick chan time.Time
}

func (c *tickClock) Now() time.Time { return c.now }
func (c *tickClock) Ticker(time.Duration) (<-chan time.Time, func()) {
	return c.tick, func() {}
}

func TestRunEndsWithThePatience(t *testing.T) {
	flows, tuples := flowsOf(12)
	p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(1, 2)))
	clock := &tickClock{now: time.Unix(0, 0), tick: make(chan time.Time, 8)}
	for i := 1; i <= 8; i++ {
		clock.tick <- clock.now.Add(time.Duration(i) * Round)
	}
	rounds := 0
	send := func(probe.List) (bool, error) { rounds++; return false, nil }
	// Every round answers one more hole, so only the patience ends it.
	answered := func(sp uint16, ttl int) bool { return int(sp)-30000 < 3*rounds }
	interrupted, err := p.Run(context.Background(), clock, 3*Round, 2, send, answered)
	if err != nil || interrupted {
		t.Fatalf("Run: interrupted %v, %v", interrupted, err)
	}
	if rounds != 3 {
		t.Errorf("%d rounds in a patience of 3 rounds", rounds)
	}
}

func TestPlanProbesSilentFailingFlowsFirst(t *testing.T) {
	flows, tuples := flowsOf(12)
	mute := flows[len(flows)-1] // failing, silent at TTL 1 (23 % 3 != 0)
	mute.Hops[1].Addr, mute.Hops[1].Answers = netip.Addr{}, 0
	for seed := range uint64(20) {
		p := New(flows, tuples, probe.KindTCPSYN, rand.New(rand.NewPCG(seed, 2)))
		if got := p.Next(2)[0].Tuple.SrcPort; got != mute.Sport {
			t.Fatalf("seed %d: first hole probed again is flow %d, want %d, the failing flow with no answer at all", seed, got, mute.Sport)
		}
	}
}
