package report

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The stages are the TTLs the two leading hypotheses name, each one's and
// the next, in that order; at each, the addresses that answered most
// first, each with the flow it answered most, the target and a flow that
// already stands for another address apart.
func TestRateLimitStages(t *testing.T) {
	hop := func(ttl int, addr string, answers int) TraceHop {
		h := TraceHop{TTL: ttl, Probes: 2, Answers: answers}
		if addr != "" {
			h.Addr = netip.MustParseAddr(addr)
		}
		return h
	}
	flows := []FlowTrace{
		{Sport: 1, Hops: []TraceHop{hop(2, "198.19.1.2", 1), hop(3, "198.19.201.2", 2), hop(4, "198.18.2.2", 2)}},
		{Sport: 2, Hops: []TraceHop{hop(2, "198.19.2.2", 2), hop(3, "198.19.202.2", 1)}},
		{Sport: 3, Hops: []TraceHop{hop(2, "198.19.1.2", 2), hop(3, "198.19.201.2", 1)}},
		{Sport: 4, Hops: []TraceHop{hop(2, "198.19.3.2", 0), hop(3, "", 0)}},
	}
	tr := Trace{Target: netip.MustParseAddrPort("198.18.2.2:3306"), Flows: flows,
		Diagnosis: Diagnosis{Hypotheses: []Hypothesis{{TTL: 3}, {TTL: 2}, {TTL: 1}}}}
	got := RateLimitStages(tr)
	want := []RateLimitStage{
		{TTL: 3, Addrs: addrs("198.19.201.2", "198.19.202.2"), Flows: []uint16{1, 2}},
		{TTL: 2, Addrs: addrs("198.19.1.2", "198.19.2.2"), Flows: []uint16{3, 2}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stages %+v, want %+v", got, want)
	}
	// A flow stands for one address only: one that answered from two at
	// a TTL (its path changed) stands for the first.
	flows[1].Hops[1] = hop(3, "198.19.202.2", 0)
	flows = append(flows, FlowTrace{Sport: 5, Hops: []TraceHop{hop(3, "198.19.203.2", 2)}})
	flows = append(flows, FlowTrace{Sport: 1, Hops: []TraceHop{hop(3, "198.19.204.2", 2)}})
	tr.Flows = flows
	if st := RateLimitStages(tr); len(st) == 0 || st[0].TTL != 3 || !reflect.DeepEqual(st[0].Flows, []uint16{1, 5}) {
		t.Errorf("with a flow standing for two addresses: %+v", st)
	}
	tr.Diagnosis.Hypotheses = nil
	if st := RateLimitStages(tr); st != nil {
		t.Errorf("no hypothesis, yet stages %+v", st)
	}
}

func TestRateLimitRoundDrained(t *testing.T) {
	for _, c := range []struct {
		drain []bool
		want  bool
	}{
		{[]bool{true, true, true, true, true, true, false, false}, true},
		{[]bool{true, false, false}, true},
		{[]bool{false, false, false}, false},                             // never answered: not reached, not drained
		{[]bool{true, true, true, true, true, true, false, true}, false}, // a token back before the end
		{[]bool{true, true, true, true, true, true, true, true}, false},  // no limit within the burst
		{[]bool{true, false}, false},
		{nil, false},
	} {
		if got := (RateLimitRound{Drain: c.drain}).Drained(); got != c.want {
			t.Errorf("drain %v: drained %v, want %v", c.drain, got, c.want)
		}
	}
}

// limitedRouters plays a round as routers with one ICMP budget each do:
// a limiting router's drain answers its burst and then falls silent, and
// silences every address of its own; lost drops the check of (pivot,
// address) right after the drain.
type limitedRouters struct {
	owner   map[netip.Addr]string
	limited map[string]bool
	lost    map[[2]netip.Addr]bool
}

func (l limitedRouters) play(st RateLimitStage, pivot int, checks []int) RateLimitRound {
	a := st.Addrs[pivot]
	r := RateLimitRound{TTL: st.TTL, Pivot: a}
	for k := range RateLimitDrain {
		r.Drain = append(r.Drain, !l.limited[l.owner[a]] || k < 6)
	}
	for _, j := range checks {
		b := st.Addrs[j]
		same := l.limited[l.owner[a]] && l.owner[a] == l.owner[b]
		r.Checks = append(r.Checks, RateLimitCheck{Addr: b, Control: true, Then: !same && !l.lost[[2]netip.Addr{a, b}]})
	}
	return r
}

func (l limitedRouters) run(st RateLimitStage) []RateLimitRound {
	var rounds []RateLimitRound
	for len(rounds) < MaxRateLimitRounds {
		pivot, checks, ok := st.NextRound(rounds)
		if !ok {
			break
		}
		rounds = append(rounds, l.play(st, pivot, checks))
	}
	return rounds
}

// The rounds group every limiting router's addresses, each pair silenced
// both ways, in as many rounds as it has addresses; a router that does
// not limit is never grouped; a check lost once is no finding, since the
// other way is asked too.
func TestRateLimitRoundsFindRouters(t *testing.T) {
	a := addrs("198.19.201.2", "198.19.202.2", "198.19.203.2", "198.19.1.2", "198.19.2.2", "198.19.3.2")
	st := RateLimitStage{TTL: 3, Addrs: a, Flows: []uint16{1, 2, 3, 4, 5, 6}}
	l := limitedRouters{
		owner:   map[netip.Addr]string{a[0]: "r2", a[1]: "r2", a[2]: "r2", a[3]: "x", a[4]: "x", a[5]: "y"},
		limited: map[string]bool{"r2": true, "y": true},
	}
	rounds := l.run(st)
	got := JudgeRateLimit(rounds)
	if want := [][]netip.Addr{a[:3]}; !reflect.DeepEqual(got.Groups, want) {
		t.Errorf("groups %v, want %v (x does not limit)", got.Groups, want)
	}
	// r2: a round drains a[0] and checks the rest, then a[1] and a[2]
	// each drain back; x's drains never take; y's does.
	if len(rounds) > 6 {
		t.Errorf("%d rounds for one router of three addresses", len(rounds))
	}
	l.lost = map[[2]netip.Addr]bool{{a[3], a[5]}: true}
	l.owner[a[3]], l.limited["x"] = "x", true
	if got := JudgeRateLimit(l.run(st)); got.Together(a[3], a[5]) {
		t.Errorf("a check lost once grouped %v and %v: %v", a[3], a[5], got.Groups)
	}
	if !JudgeRateLimit(l.run(st)).Together(a[3], a[4]) {
		t.Errorf("x's addresses not grouped once x limits")
	}
}

// Where no router limits within the burst, two rounds tell, and the test
// stops.
func TestRateLimitRoundsGiveUpWhereNothingDrains(t *testing.T) {
	a := addrs("198.19.201.2", "198.19.202.2", "198.19.203.2", "198.19.204.2")
	st := RateLimitStage{TTL: 3, Addrs: a, Flows: []uint16{1, 2, 3, 4}}
	l := limitedRouters{owner: map[netip.Addr]string{a[0]: "r2", a[1]: "r2", a[2]: "r2", a[3]: "r2"}}
	rounds := l.run(st)
	if got := JudgeRateLimit(rounds); len(rounds) != 2 || got.Drained != 0 || got.Groups != nil {
		t.Errorf("%d rounds, found %+v; want 2 rounds and nothing", len(rounds), got)
	}
}

// A check whose control went unanswered proves nothing, and is asked once
// more.
func TestRateLimitUnansweredControlAskedAgain(t *testing.T) {
	a := addrs("198.19.201.2", "198.19.202.2")
	st := RateLimitStage{TTL: 3, Addrs: a, Flows: []uint16{1, 2}}
	drained := []bool{true, false, false}
	first := RateLimitRound{TTL: 3, Pivot: a[0], Drain: drained, Checks: []RateLimitCheck{{Addr: a[1]}}}
	if got := JudgeRateLimit([]RateLimitRound{first}); got.Silenced != 0 {
		t.Errorf("a silence after an unanswered control counted: %+v", got)
	}
	pivot, checks, ok := st.NextRound([]RateLimitRound{first})
	if !ok || pivot != 0 || !slices.Equal(checks, []int{1}) {
		t.Errorf("next round %d %v %v, want a[0] checking a[1] again", pivot, checks, ok)
	}
	// Twice unanswered: the other way is asked, twice at most, then no more.
	back := RateLimitRound{TTL: 3, Pivot: a[1], Drain: drained, Checks: []RateLimitCheck{{Addr: a[0]}}}
	if pivot, checks, ok := st.NextRound([]RateLimitRound{first, first}); !ok || pivot != 1 || !slices.Equal(checks, []int{0}) {
		t.Errorf("after two: next round %d %v %v, want a[1] checking a[0]", pivot, checks, ok)
	}
	if _, _, ok := st.NextRound([]RateLimitRound{first, first, back, back}); ok {
		t.Error("asked a pair a third time")
	}
}

// With r2's three addresses found one router's by their rate limits, the
// one-tier tie of the alias-test trace is decided as by timestamps.
func TestRateLimitTestBreaksTheOneTierTie(t *testing.T) {
	tr := testdataTrace(t, "valid-trace-alias-test.json")
	groups := tr.Aliases.Groups
	tr.Aliases = nil
	tr.RateLimits = &RateLimitTest{Rounds: 3, Drained: 3, Silenced: 4, Groups: groups}
	if d := DiagnoseSample(tr.Flows, tr.Sample()); d.Direction != DirectionReturn {
		t.Errorf("with the rate-limit test: %s, want return: %s", d.Direction, d.Text)
	}
}

// The test's finding round-trips through the document and its schema, and
// the text says what it found.
func TestRateLimitTestRoundTrip(t *testing.T) {
	tr := returnTrace()
	tr.RateLimits = &RateLimitTest{Rounds: 4, Drained: 3, Silenced: 2, Groups: [][]netip.Addr{addrs("198.19.201.2", "198.19.203.2")}}
	got, text := roundTrip(t, tr)
	if !reflect.DeepEqual(got.RateLimits, tr.RateLimits) {
		t.Errorf("read back %+v, want %+v", got.RateLimits, tr.RateLimits)
	}
	for _, want := range []string{"alias test (ICMP rate limits): 4 rounds, 3 drained a router's budget, 2 silenced", "198.19.201.2 and 198.19.203.2"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the text does not say %q:\n%s", want, text.String())
		}
	}
	tr.RateLimits = &RateLimitTest{Rounds: 2}
	if got, text := roundTrip(t, tr); got.RateLimits == nil || got.RateLimits.Rounds != 2 || got.RateLimits.Groups != nil ||
		!strings.Contains(text.String(), "does not rate-limit") {
		t.Errorf("a test that found nothing read back as %+v:\n%s", got.RateLimits, text)
	}
}

func TestDecodeTraceRefusesBadRateLimitTests(t *testing.T) {
	for _, rl := range []string{
		`{"rounds":1,"drained":2,"silenced":0,"groups":[]}`,
		`{"rounds":2,"drained":1,"silenced":2,"groups":[]}`,
		`{"rounds":-1,"drained":0,"silenced":0,"groups":[]}`,
		`{"rounds":99999,"drained":0,"silenced":0,"groups":[]}`,
		`{"rounds":2,"drained":2,"silenced":2,"groups":[["198.19.1.2"]]}`,
		`{"rounds":2,"drained":2,"silenced":2,"groups":[["2001:db8::1","2001:db8::2"]]}`,
		`{"rounds":2,"drained":2,"silenced":2,"groups":[["198.19.1.2","198.19.1.3"],["198.19.1.3","198.19.1.4"]]}`,
	} {
		doc := `{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1","flows":[],"rate_limit_test":` + rl + `}`
		if _, err := DecodeTrace([]byte(doc)); err == nil {
			t.Errorf("accepted rate_limit_test %s", rl)
		}
	}
	v6 := `{"schema_version":1,"type":"trace","target":{"addr":"2001:db8:2::2","port":3306},"source":"2001:db8:1::1","flows":[],` +
		`"rate_limit_test":{"rounds":2,"drained":2,"silenced":2,"groups":[["2001:db8::1","2001:db8::2"]]}}`
	if tr, err := DecodeTrace([]byte(v6)); err != nil || tr.RateLimits == nil || len(tr.RateLimits.Groups) != 1 {
		t.Errorf("an IPv6 trace's group: %+v, %v", tr.RateLimits, err)
	}
}
