package report

import (
	"net/netip"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
)

func result(sport uint16, ttl uint8, o probe.Outcome, from string) probe.Result {
	r := probe.Result{
		Probe:   probe.Probe{Kind: probe.KindTCPSYN, TTL: ttl, Tuple: hash.FiveTuple{Src: src, Dst: target.Addr(), Proto: hash.ProtoTCP, SrcPort: sport, DstPort: target.Port()}},
		Outcome: o, RTT: time.Millisecond,
	}
	if from != "" {
		r.From = netip.MustParseAddr(from)
	}
	if o == probe.Unreachable {
		r.ICMPType = 11
	}
	return r
}

func TestTraceFlowsAssemblesHops(t *testing.T) {
	e2e := []hash.Judged{
		{FlowStats: hash.FlowStats{Tuple: result(30000, 0, 0, "").Tuple, Sent: 2, Received: 2}, State: hash.StateOK},
		{FlowStats: hash.FlowStats{Tuple: result(30001, 0, 0, "").Tuple, Sent: 2, Lost: 2}, State: hash.StateFail},
	}
	hops := []probe.Result{
		// 30000: r1, silent, r2, destination at TTL 4; TTL 5 is past it.
		result(30000, 1, probe.Unreachable, "198.18.255.1"), result(30000, 1, probe.Unreachable, "198.18.255.1"),
		result(30000, 2, probe.Timeout, ""), result(30000, 2, probe.Timeout, ""),
		result(30000, 3, probe.Unreachable, "198.18.255.99"), result(30000, 3, probe.Unreachable, "198.19.200.1"),
		result(30000, 4, probe.Answered, "198.18.2.2"), result(30000, 4, probe.Timeout, ""),
		result(30000, 5, probe.Answered, "198.18.2.2"),
		// 30001 dies after r1.
		result(30001, 1, probe.Unreachable, "198.18.255.1"), result(30001, 2, probe.Timeout, ""), result(30001, 3, probe.Timeout, ""),
	}
	rec := NewHops()
	for _, r := range hops {
		rec.Add(r)
	}
	flows := TraceFlows(e2e, rec)
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2", len(flows))
	}
	ok, fail := flows[0], flows[1]
	if ok.State != hash.StateOK || ok.ReachedTTL != 4 || len(ok.Hops) != 4 {
		t.Errorf("flow 30000: state %s reached %d with %d hops; want ok, 4, 4", ok.State, ok.ReachedTTL, len(ok.Hops))
	}
	if h := ok.Hops[2]; h.Addr.String() != "198.18.255.99" || len(h.Others) != 1 || h.Answers != 2 {
		t.Errorf("TTL 3: %v others %v answers %d; want the first answer with one other address", h.Addr, h.Others, h.Answers)
	}
	if h := ok.Hops[1]; h.Addr.IsValid() || h.Probes != 2 || h.Answers != 0 {
		t.Errorf("TTL 2: %+v; want a silent hop with 2 probes", h)
	}
	if got, want := ok.Signature(), "198.18.255.1 * 198.18.255.99"; got != want {
		t.Errorf("signature %q, want %q", got, want)
	}
	if fail.State != hash.StateFail || fail.ReachedTTL != 0 || len(fail.Hops) != 3 || fail.Signature() != "198.18.255.1 * *" {
		t.Errorf("flow 30001: %+v, signature %q", fail, fail.Signature())
	}
}

func TestHopsAway(t *testing.T) {
	cases := []struct {
		ttl  uint8
		want int
	}{{61, 4}, {60, 5}, {125, 4}, {250, 6}, {64, 1}, {0, 0}}
	for _, c := range cases {
		if got := HopsAway(c.ttl); got != c.want {
			t.Errorf("HopsAway(%d) = %d, want %d", c.ttl, got, c.want)
		}
	}
}
