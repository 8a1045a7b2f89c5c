package report

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// The pairs: every ordered pair of the IPv4 addresses that answered at one
// TTL, the target and single addresses apart, most answering first.
func TestAliasPairs(t *testing.T) {
	a, b, c := "198.19.1.2", "198.19.2.2", "198.19.3.2"
	target := netip.MustParseAddr("198.18.2.2")
	flows := []FlowTrace{
		{Sport: 1, Hops: []TraceHop{{TTL: 1, Addr: netip.MustParseAddr("198.19.0.1"), Answers: 2}, {TTL: 2, Addr: netip.MustParseAddr(b), Answers: 1}}},
		{Sport: 2, Hops: []TraceHop{{TTL: 1, Addr: netip.MustParseAddr("198.19.0.1"), Answers: 2}, {TTL: 2, Addr: netip.MustParseAddr(a), Answers: 2}}},
		{Sport: 3, Hops: []TraceHop{{TTL: 2, Addr: netip.MustParseAddr(c), Answers: 2}, {TTL: 3, Addr: target, Answers: 2, Reached: true}}},
		{Sport: 4, Hops: []TraceHop{{TTL: 2, Addr: netip.MustParseAddr("2001:db8::2"), Answers: 2}}},
		{Sport: 5, Hops: []TraceHop{{TTL: 3, Addr: netip.MustParseAddr("198.19.9.9"), Answers: 1}, {TTL: 3, Addr: target, Answers: 1}}},
	}
	var got []string
	for _, p := range AliasPairs(flows, target) {
		got = append(got, p[0].String()+">"+p[1].String())
	}
	want := []string{a + ">" + c, a + ">" + b, c + ">" + a, c + ">" + b, b + ">" + a, b + ">" + c}
	if !slices.Equal(got, want) {
		t.Errorf("pairs %v, want %v", got, want)
	}
}

// The bounds: at most aliasTestMaxAddrs addresses a TTL, aliasTestMaxPairs
// pairs in all.
func TestAliasPairsBounded(t *testing.T) {
	var flows []FlowTrace
	for ttl := 1; ttl <= 8; ttl++ {
		for i := range 40 {
			flows = append(flows, FlowTrace{Sport: uint16(ttl*100 + i), Hops: []TraceHop{
				{TTL: ttl, Addr: netip.AddrFrom4([4]byte{198, 19, byte(ttl), byte(i + 1)}), Answers: 1}}})
		}
	}
	pairs := AliasPairs(flows, netip.MustParseAddr("198.18.2.2"))
	if len(pairs) != aliasTestMaxPairs {
		t.Fatalf("%d pairs, want the bound %d", len(pairs), aliasTestMaxPairs)
	}
	perTTL := map[byte]map[netip.Addr]bool{}
	for _, p := range pairs {
		ttl := p[0].As4()[2]
		if perTTL[ttl] == nil {
			perTTL[ttl] = map[netip.Addr]bool{}
		}
		perTTL[ttl][p[0]] = true
	}
	for ttl, as := range perTTL {
		if len(as) > aliasTestMaxAddrs {
			t.Errorf("TTL %d: %d addresses asked, want at most %d", ttl, len(as), aliasTestMaxAddrs)
		}
	}
}

// Only a router that stamped the address it was sent to, and the one
// asked after it, joins two addresses; joins are transitive; a router
// that ignores the option, or a lost reply, proves nothing.
func TestJudgeAliases(t *testing.T) {
	x := addrs("198.19.201.2", "198.19.202.2", "198.19.203.2", "198.19.1.2", "198.19.2.2")
	got := JudgeAliases([]AliasAnswer{
		{Addr: x[0], Ask: x[1], Answered: true, Stamped: []netip.Addr{x[0], x[1]}},
		{Addr: x[1], Ask: x[2], Answered: true, Stamped: []netip.Addr{x[1], x[2]}},
		{Addr: x[3], Ask: x[4], Answered: true, Stamped: []netip.Addr{x[3]}}, // two routers
		{Addr: x[4], Ask: x[3], Answered: true},                              // ignores the option
		{Addr: x[4], Ask: x[0], Answered: true, Stamped: []netip.Addr{x[0]}}, // stamped by another: not honoured
		{Addr: x[2], Ask: x[3], Stamped: []netip.Addr{x[2], x[3]}},           // never answered
	})
	want := &AliasTest{Asked: 6, Answered: 5, Honoured: 3, Groups: [][]netip.Addr{x[:3]}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got := JudgeAliases(nil); got.Asked != 0 || got.Groups != nil {
		t.Errorf("no answers: %+v", got)
	}
}

// A one-tier lab fabric of plain Linux routers (outgoing source, errors
// on the flow's path) whose r2 lost its link toward the client into p2
// (link-oneway@r2-p2, routes all): r2 answers from its three other
// links' addresses, which read as three routers beside an unseen fourth
// just as well. The alias test found them one router's, and that decides
// it: the answers are lost on the way back. Without the test's finding
// the same flows tie.
func TestAliasTestBreaksTheOneTierTie(t *testing.T) {
	tr := testdataTrace(t, "valid-trace-alias-test.json")
	if tr.Aliases == nil || len(tr.Aliases.Groups) != 1 {
		t.Fatalf("alias test read back as %+v, want one group", tr.Aliases)
	}
	if d := DiagnoseSample(tr.Flows, tr.Sample()); d.Direction != DirectionReturn {
		t.Errorf("with the alias test: %s, want return: %s", d.Direction, d.Text)
	}
	tr.Aliases = nil
	if d := DiagnoseSample(tr.Flows, tr.Sample()); d.Direction != DirectionUnknown {
		t.Errorf("without it: %s, want unknown (the tie): %s", d.Direction, d.Text)
	}
}

// The test's finding round-trips through the document and its schema, and
// the text says what it asked and found.
func TestAliasTestRoundTrip(t *testing.T) {
	tr := returnTrace()
	tr.Aliases = &AliasTest{Asked: 6, Answered: 5, Honoured: 4, Groups: [][]netip.Addr{addrs("198.19.201.2", "198.19.203.2")}}
	got, text := roundTrip(t, tr)
	if !reflect.DeepEqual(got.Aliases, tr.Aliases) {
		t.Errorf("read back %+v, want %+v", got.Aliases, tr.Aliases)
	}
	for _, want := range []string{"alias test (prespecified IPv4 timestamps): 6 asked, 5 answered, 4 stamped", "198.19.201.2 and 198.19.203.2"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the text does not say %q:\n%s", want, text.String())
		}
	}
	tr.Aliases = &AliasTest{Asked: 3}
	if got, _ := roundTrip(t, tr); got.Aliases == nil || got.Aliases.Asked != 3 || got.Aliases.Groups != nil {
		t.Errorf("a test that found nothing read back as %+v", got.Aliases)
	}
}

func TestDecodeTraceRefusesBadAliasTests(t *testing.T) {
	for _, at := range []string{
		`{"asked":1,"answered":2,"honoured":0,"groups":[]}`,
		`{"asked":2,"answered":2,"honoured":3,"groups":[]}`,
		`{"asked":-1,"answered":0,"honoured":0,"groups":[]}`,
		`{"asked":2,"answered":2,"honoured":2,"groups":[["198.19.1.2"]]}`,
		`{"asked":2,"answered":2,"honoured":2,"groups":[["198.19.1.2","2001:db8::1"]]}`,
		`{"asked":2,"answered":2,"honoured":2,"groups":[["198.19.1.2","198.19.1.3"],["198.19.1.3","198.19.1.4"]]}`,
		`{"asked":2,"answered":2,"honoured":2,"groups":[["198.19.1.2","x"]]}`,
	} {
		doc := `{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1","flows":[],"alias_test":` + at + `}`
		if _, err := DecodeTrace([]byte(doc)); err == nil {
			t.Errorf("accepted alias_test %s", at)
		}
	}
}
