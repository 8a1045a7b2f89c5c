package report

import (
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
