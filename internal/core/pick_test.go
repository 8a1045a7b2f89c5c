package core

import (
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

// judgedFlows are n flows from source port 1, their states by stateOf.
func judgedFlows(n int, stateOf func(sport uint16) hash.State) []hash.Judged {
	out := make([]hash.Judged, n)
	for i := range out {
		sp := uint16(i + 1)
		out[i] = hash.Judged{State: stateOf(sp), FlowStats: hash.FlowStats{Tuple: hash.FiveTuple{Src: netip.MustParseAddr("198.18.1.1"),
			Dst: netip.MustParseAddr("198.18.2.2"), Proto: hash.ProtoTCP, SrcPort: sp, DstPort: 3306}}}
	}
	return out
}

func TestPickTracedFailingFirst(t *testing.T) {
	// 100 flows: every 10th fails, every 25th is flaky, 6 never left the
	// host, the rest are healthy.
	flows := judgedFlows(100, func(sp uint16) hash.State {
		switch {
		case sp%10 == 0:
			return hash.StateFail
		case sp%25 == 1:
			return hash.StateFlaky
		case sp > 94:
			return hash.StateError
		}
		return hash.StateOK
	})
	picked, rest := pickTraced(flows, 8)
	untraced := countStates(rest)
	count := map[hash.State]int{}
	var healthy []uint16
	for _, j := range picked {
		count[j.State]++
		if j.State == hash.StateOK {
			healthy = append(healthy, j.Tuple.SrcPort)
		}
	}
	if count[hash.StateFail] != 8 || count[hash.StateFlaky] != 2 || count[hash.StateOK] != 8 || count[hash.StateError] != 5 {
		t.Errorf("picked %v, want 8 failing, 2 flaky, 8 healthy and the 5 never sent", count)
	}
	if want := (report.Untraced{OK: 73, Fail: 2, Flaky: 2}); untraced != want {
		t.Errorf("untraced %+v, want %+v", untraced, want)
	}
	// Spread over the range, not the first eight.
	if healthy[len(healthy)-1] < 80 {
		t.Errorf("healthy flows picked %v: not spread over the range", healthy)
	}
	if b := TracedBound(TraceOptions{Flows: 8}, 100); b != 18 {
		t.Errorf("TracedBound = %d, want 18 (8 failing, 8 healthy, 2 flaky)", b)
	}
}

func TestPickTracedEveryFlow(t *testing.T) {
	flows := judgedFlows(50, func(sp uint16) hash.State {
		return map[bool]hash.State{true: hash.StateFail, false: hash.StateOK}[sp%3 == 0]
	})
	for _, n := range []int{0, 40} {
		picked, rest := pickTraced(flows, n)
		untraced := countStates(rest)
		if len(picked) != 50 || untraced != (report.Untraced{}) {
			t.Errorf("flows %d: picked %d, untraced %+v; want all 50 and none left", n, len(picked), untraced)
		}
	}
	if b := TracedBound(TraceOptions{}, 50); b != 50 {
		t.Errorf("TracedBound without a bound = %d, want 50", b)
	}
}

// Where few flows fail, the healthy ones fill the room the failing ones
// leave: as many flows traced, more contrast.
func TestPickTracedFillsWithHealthy(t *testing.T) {
	flows := judgedFlows(100, func(sp uint16) hash.State {
		return map[bool]hash.State{true: hash.StateFail, false: hash.StateOK}[sp%40 == 0]
	})
	picked, rest := pickTraced(flows, 8)
	untraced := countStates(rest)
	fail, ok := 0, 0
	for _, j := range picked {
		switch j.State {
		case hash.StateFail:
			fail++
		case hash.StateOK:
			ok++
		}
	}
	if fail != 2 || ok != 16 || untraced != (report.Untraced{OK: 82}) {
		t.Errorf("picked %d failing and %d healthy, untraced %+v; want 2, 16 (18 in all) and 82", fail, ok, untraced)
	}
}
