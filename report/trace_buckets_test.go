package report

import (
	"math"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

func TestBucketPaths(t *testing.T) {
	const r1, p1, p2, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.99"
	flaky := flowOf(5, hash.StateFlaky, r1, p1, r2, "=")
	flows := []FlowTrace{
		flowOf(4, hash.StateOK, r1, p1, r2, "="),
		flowOf(1, hash.StateOK, r1, p1, r2, "="),
		flowOf(2, hash.StateFail, r1, "*", "*", "*"),
		flowOf(3, hash.StateOK, r1, p2, r2, "="),
		flowOf(7, hash.StateFail, r1, "*", "*", "*"),
		flaky,
		{Sport: 9, State: hash.StateFail}, // nothing sent, no hop
	}
	got := BucketPaths(flows)
	if len(got) != 4 {
		t.Fatalf("%d buckets: %+v", len(got), got)
	}
	// Most failing flows first, then by signature.
	want := []struct {
		sig                        string
		ports                      []uint16
		ok, fail, flaky, sent, rcv int
	}{
		{r1 + " * * *", []uint16{2, 7}, 0, 2, 0, 6, 0},
		{"", []uint16{9}, 0, 1, 0, 0, 0},
		{r1 + " " + p1 + " " + r2, []uint16{1, 4, 5}, 2, 0, 1, 9, 7},
		{r1 + " " + p2 + " " + r2, []uint16{3}, 1, 0, 0, 3, 3},
	}
	for i, w := range want {
		b := got[i]
		if b.Signature != w.sig || !equalPorts(b.Ports, w.ports) || b.OK != w.ok || b.Fail != w.fail || b.Flaky != w.flaky || b.Sent != w.sent || b.Received != w.rcv {
			t.Errorf("bucket %d = %+v, want %+v", i, b, w)
		}
	}
	if b := got[0]; b.Loss != 1 || math.Abs(b.LossLow-0.6097) > 1e-4 || b.LossHigh != 1 {
		t.Errorf("all lost: loss %v [%v, %v]", b.Loss, b.LossLow, b.LossHigh)
	}
	if b := got[2]; math.Abs(b.Loss-2.0/9) > 1e-9 || len(b.Hops) != 3 || b.Hops[1] != netip.MustParseAddr(p1) {
		t.Errorf("bucket 2: %+v", b)
	}
	if b := got[0]; b.Hops[1].IsValid() {
		t.Errorf("silent hop should be invalid: %v", b.Hops)
	}
	if b := got[1]; b.LossLow != 0 || b.LossHigh != 1 {
		t.Errorf("no probe sent: [%v, %v]", b.LossLow, b.LossHigh)
	}
}

func equalPorts(a, b []uint16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTraceWidth(t *testing.T) {
	r1, p1, p3, p4 := netip.MustParseAddr("198.18.255.1"), netip.MustParseAddr("198.18.255.11"), netip.MustParseAddr("198.18.255.13"), netip.MustParseAddr("198.18.255.14")
	dst := netip.MustParseAddr("198.18.2.2")
	flow := func(st hash.State, hops ...netip.Addr) FlowTrace {
		f := FlowTrace{State: st}
		for i, h := range hops {
			f.Hops = append(f.Hops, TraceHop{TTL: i + 1, Addr: h, Reached: h == dst})
		}
		return f
	}
	tr := Trace{
		Flows: []FlowTrace{
			flow(hash.StateOK, r1, p1, dst), flow(hash.StateOK, r1, p3, dst), flow(hash.StateOK, r1, p4, dst),
			flow(hash.StateFail, r1, netip.Addr{}, netip.Addr{}),
		},
		Diagnosis: Diagnosis{Direction: DirectionForward, Suspects: []Suspect{{Addr: r1}}},
	}
	// Three members answer after r1 and the failing flows take a fourth.
	if w := TraceWidth(tr); w.Low != 4 || w.Best != 4 {
		t.Errorf("TraceWidth = %+v, want low and best 4", w)
	}
	tr.Diagnosis.Direction = DirectionReturn
	if w := TraceWidth(tr); w.Valid() {
		t.Errorf("TraceWidth of a return fault = %+v, want none", w)
	}
}
