package report

import (
	"net/netip"
	"slices"
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

// TestHopsKeepRoutersIPIDs: every router answer with an IP ID is kept at
// its hop in arrival order; the destination's and those without one are
// not.
func TestHopsKeepRoutersIPIDs(t *testing.T) {
	start := time.Unix(100, 0)
	at := func(r probe.Result, sent time.Duration, id uint16) probe.Result {
		r.Sent, r.IPID, r.ReplyTTL = start.Add(sent), id, 62
		return r
	}
	rec := NewHops()
	for _, r := range []probe.Result{
		at(result(30000, 1, probe.Unreachable, "198.19.1.2"), 5*time.Millisecond, 102),
		at(result(30000, 1, probe.Unreachable, "198.19.2.2"), 2*time.Millisecond, 101),
		at(result(30000, 1, probe.Unreachable, "198.19.2.2"), 9*time.Millisecond, 0), // none (IPv6, or copied)
		at(result(30000, 2, probe.Answered, "198.18.2.2"), 3*time.Millisecond, 7),    // the destination's
	} {
		rec.Add(r)
	}
	hops := rec.Path(30000)
	want := []IDSample{
		{Addr: netip.MustParseAddr("198.19.2.2"), At: start.Add(3 * time.Millisecond), ID: 101, TTL: 62},
		{Addr: netip.MustParseAddr("198.19.1.2"), At: start.Add(6 * time.Millisecond), ID: 102, TTL: 62},
	}
	if len(hops) != 2 || !slices.Equal(hops[0].IDs, want) || len(hops[1].IDs) != 0 {
		t.Errorf("hops %+v\nwant TTL 1's IDs %+v and none at TTL 2", hops, want)
	}
}
