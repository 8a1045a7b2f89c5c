package hash

import (
	"net/netip"
	"testing"
	"time"
)

func TestJudgeOneRule(t *testing.T) {
	// Two clean ports measure the background loss; against it, a port
	// that lost all of 3 probes fails, one that lost 1 of 3 is flaky, and
	// one whose probes never left is error, not fail.
	stats := []FlowStats{
		{Tuple: tuple(1), Sent: 3, Received: 3}, {Tuple: tuple(2), Sent: 3, Received: 3},
		{Tuple: tuple(3), Sent: 3, Lost: 3}, {Tuple: tuple(4), Sent: 3, Received: 2, Lost: 1},
		{Tuple: tuple(5), SendErrors: 3},
	}
	got, loss := Judge(stats, DefaultAlpha)
	want := []State{StateOK, StateOK, StateFail, StateFlaky, StateError}
	for i, j := range got {
		if j.State != want[i] || j.Tuple != stats[i].Tuple {
			t.Errorf("flow %d: %s, want %s", i, j.State, want[i])
		}
	}
	if !(loss > 0 && loss < 0.2) {
		t.Errorf("background loss %g; want the small Jeffreys estimate of 1 lost in 9", loss)
	}
}

func tuple(sport uint16) FiveTuple {
	return FiveTuple{
		Src: netip.MustParseAddr("198.18.1.1"), Dst: netip.MustParseAddr("198.18.2.2"),
		Proto: ProtoTCP, SrcPort: sport, DstPort: 3306,
	}
}

func TestBucketerAggregatesPerKey(t *testing.T) {
	b := BySourcePort()
	ms := time.Millisecond
	b.Add(Observation{Tuple: tuple(30001), Result: Received, RTT: 3 * ms})
	b.Add(Observation{Tuple: tuple(30000), Result: Lost, Late: 1})
	b.Add(Observation{Tuple: tuple(30001), Result: Received, RTT: 1 * ms, Duplicates: 2})
	b.Add(Observation{Tuple: tuple(30001), Result: Unreachable})
	b.Add(Observation{Tuple: tuple(30000), Result: NotSent})

	got := b.Buckets()
	if len(got) != 2 || got[0].Tuple.SrcPort != 30000 || got[1].Tuple.SrcPort != 30001 {
		t.Fatalf("buckets %+v: want 30000 then 30001", got)
	}
	lost, mixed := got[0], got[1]
	if lost.Sent != 1 || lost.Lost != 1 || lost.SendErrors != 1 || lost.Late != 1 {
		t.Errorf("30000: %+v; want 1 sent, lost, 1 send error, 1 late", lost)
	}
	if mixed.Sent != 3 || mixed.Received != 2 || mixed.Unreachable != 1 || mixed.Duplicates != 2 {
		t.Errorf("30001: %+v; want 3 sent, 2 received, 1 unreachable", mixed)
	}
	if mixed.RTTMin != ms || mixed.RTTMax != 3*ms || mixed.RTTAvg() != 2*ms {
		t.Errorf("30001 RTT min/avg/max %s/%s/%s, want 1ms/2ms/3ms", mixed.RTTMin, mixed.RTTAvg(), mixed.RTTMax)
	}
	total := Total(got)
	if total.Sent != 4 || total.Received != 2 || total.RTTMin != ms || total.RTTMax != 3*ms {
		t.Errorf("total %+v: want 4 sent, 2 received, RTT 1ms..3ms", total)
	}
}

func TestBucketerCustomKey(t *testing.T) {
	// Group by path signature, as trace does: two ports share a path.
	path := map[uint16]string{30000: "a b", 30001: "a c", 30002: "a b"}
	b := NewBucketer(func(t FiveTuple) string { return path[t.SrcPort] })
	for sp := range path {
		b.Add(Observation{Tuple: tuple(sp), Result: Received})
	}
	got := b.Buckets()
	if len(got) != 2 || got[0].Sent != 2 || got[1].Sent != 1 {
		t.Errorf("buckets %+v: want {a b}: 2 probes, {a c}: 1", got)
	}
}

func TestFiveTupleReverse(t *testing.T) {
	tu := tuple(30000)
	r := tu.Reverse()
	if r.Src != tu.Dst || r.Dst != tu.Src || r.SrcPort != 3306 || r.DstPort != 30000 || r.Reverse() != tu {
		t.Errorf("Reverse(%s) = %s", tu, r)
	}
	if got := tu.String(); tu.Is6() || got != "tcp 198.18.1.1:30000 -> 198.18.2.2:3306" {
		t.Errorf("String() = %q", tu.String())
	}
}
