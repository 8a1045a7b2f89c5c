package report

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// labNet is a synthetic copy of the lab fabric:
//
//	client -> r1 -> p1..pW [-> q1..qM] -> r2 -> server
//
// Routers answer from their router ID (198.18.255.K: r1=1, p_i=10+i,
// q_j=40+j, r2=99) or, with inbound, from the address of the link the probe
// came in on, as the lab does in each ICMP source mode.
type labNet struct {
	width, width2 int
	inbound       bool
	silent        map[string]bool
	maxTTL        int
	names         map[netip.Addr]string // address -> node, like lab.Fabric.NodeOf
	// retLost, when set, says whether a packet travelling back toward the
	// client along path (origin first) is lost. Routers pick the way back
	// by hashing: ICMP errors on the probe's tuple, SYN-ACKs on the
	// reversed one, so the two take different paths.
	retLost func(path []string) bool
	base    uint16 // first source port
}

const (
	kindICMP   = 1
	kindSynAck = 2
)

// tiers lists the fabric's routers by distance from the client.
func (l *labNet) tiers() [][]string {
	t := [][]string{{"r1"}, numbered("p", l.width)}
	if l.width2 > 0 {
		t = append(t, numbered("q", l.width2))
	}
	return append(t, []string{"r2"})
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

// returnPath is the way back from the router at forward index from (or from
// the server when from is past the last router) to r1.
func (l *labNet) returnPath(sport uint16, from int, kind uint32) []string {
	tiers := l.tiers()
	origin := "s"
	if from < len(tiers) {
		origin = l.route(sport)[from]
	}
	path := []string{origin}
	for k := min(from, len(tiers)) - 1; k >= 0; k-- {
		m := tiers[k]
		path = append(path, m[mix(sport, 100*kind+uint32(k))%uint32(len(m))])
	}
	return path
}

var server = netip.MustParseAddr("198.18.2.2")

func newLab(width, width2 int, inbound bool, silent ...string) *labNet {
	l := &labNet{width: width, width2: width2, inbound: inbound, silent: map[string]bool{}, maxTTL: 8, names: map[netip.Addr]string{}}
	for _, s := range silent {
		l.silent[s] = true
	}
	return l
}

func (l *labNet) addr(node, prev string) netip.Addr {
	var a netip.Addr
	idx := func(s string) int {
		var n int
		fmt.Sscanf(s[1:], "%d", &n)
		return n
	}
	switch {
	case !l.inbound && node == "r1":
		a = netip.AddrFrom4([4]byte{198, 18, 255, 1})
	case !l.inbound && node == "r2":
		a = netip.AddrFrom4([4]byte{198, 18, 255, 99})
	case !l.inbound && node[0] == 'p':
		a = netip.AddrFrom4([4]byte{198, 18, 255, byte(10 + idx(node))})
	case !l.inbound && node[0] == 'q':
		a = netip.AddrFrom4([4]byte{198, 18, 255, byte(40 + idx(node))})
	case node == "r1":
		a = netip.MustParseAddr("198.18.1.254")
	case node[0] == 'p':
		a = netip.AddrFrom4([4]byte{198, 19, byte(idx(node)), 2})
	case node[0] == 'q':
		a = netip.AddrFrom4([4]byte{198, 19, byte(100 + idx(prev)), byte(16*(idx(node)-1) + 2)})
	case node == "r2":
		a = netip.AddrFrom4([4]byte{198, 19, byte(200 + idx(prev)), 2})
	}
	l.names[a] = node
	return a
}

// mix is a stand-in for a router's flow hash.
func mix(sport uint16, seed uint32) uint32 {
	h := uint64(sport) + uint64(seed)*0x9e3779b97f4a7c15
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return uint32(h >> 7)
}

func (l *labNet) route(sport uint16) []string {
	names := []string{"r1", fmt.Sprintf("p%d", mix(sport, 1)%uint32(l.width)+1)}
	if l.width2 > 0 {
		names = append(names, fmt.Sprintf("q%d", mix(sport, 2)%uint32(l.width2)+1))
	}
	return append(names, "r2")
}

// fault says, for a flow's forward path, from which hop index on nothing
// answers (-1: none) and whether the destination's answer is lost on the way
// back.
type fault func(names []string) (lostFrom int, ret bool)

func (l *labNet) flows(n int, fl fault) []FlowTrace {
	var out []FlowTrace
	base := l.base
	if base == 0 {
		base = 30000
	}
	for k := range n {
		sport := base + uint16(k)
		names := l.route(sport)
		lostFrom, ret := -1, false
		if fl != nil {
			lostFrom, ret = fl(names)
		}
		f := FlowTrace{Sport: sport, Sent: 3}
		prev := "c"
		for i, nm := range names {
			h := TraceHop{TTL: i + 1, Probes: 3}
			if (lostFrom < 0 || i < lostFrom) && !l.silent[nm] && (l.retLost == nil || !l.retLost(l.returnPath(sport, i, kindICMP))) {
				h.Addr, h.Answers, h.ICMPType = l.addr(nm, prev), 3, 11
				h.RTT = time.Duration(100*(i+1)+int(sport%7)) * time.Microsecond
			}
			f.Hops = append(f.Hops, h)
			prev = nm
		}
		if l.retLost != nil && l.retLost(l.returnPath(sport, len(names), kindSynAck)) {
			ret = true
		}
		if lostFrom < 0 && !ret {
			ttl := len(names) + 1
			f.Hops = append(f.Hops, TraceHop{TTL: ttl, Addr: server, Reached: true, Probes: 3, Answers: 3,
				RTT: time.Duration(100*ttl+int(sport%7)) * time.Microsecond})
			f.ReachedTTL, f.Received, f.State = ttl, 3, hash.StateOK
		} else {
			for ttl := len(names) + 1; ttl <= l.maxTTL; ttl++ {
				f.Hops = append(f.Hops, TraceHop{TTL: ttl, Probes: 3})
			}
			f.State = hash.StateFail
		}
		out = append(out, f)
	}
	return out
}

func on(node string, at int) fault {
	return func(names []string) (int, bool) {
		if names[at] == node {
			return at, false
		}
		return -1, false
	}
}

func linkDrop(a, b string) fault {
	return func(names []string) (int, bool) {
		for i := 0; i+1 < len(names); i++ {
			if names[i] == a && names[i+1] == b {
				return i + 1, false
			}
		}
		return -1, false
	}
}

// withReturnFault marks the flows whose reverse hash picks member 3 of 4 as
// failing: routers still answer, the destination's answer is lost.
func withReturnFault(l *labNet, n int) []FlowTrace {
	fs := l.flows(n, nil)
	for i := range fs {
		f := &fs[i]
		if mix(f.Sport, 3)%4 != 2 {
			continue
		}
		last := f.Hops[len(f.Hops)-1]
		f.Hops[len(f.Hops)-1] = TraceHop{TTL: last.TTL, Probes: 3}
		for ttl := last.TTL + 1; ttl <= l.maxTTL; ttl++ {
			f.Hops = append(f.Hops, TraceHop{TTL: ttl, Probes: 3})
		}
		f.State, f.Received, f.ReachedTTL = hash.StateFail, 0, 0
	}
	return fs
}

func countState(fs []FlowTrace, st hash.State) int {
	n := 0
	for _, f := range fs {
		if f.State == st {
			n++
		}
	}
	return n
}

func describe(d Diagnosis) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", d.Direction, d.Text)
	for i, s := range d.Suspects {
		fmt.Fprintf(&b, "  %d. %s score %d: %s\n", i+1, suspectName(s), s.Score, s.Evidence)
	}
	return b.String()
}

func TestDiagnoseForwardOneTierBlackhole(t *testing.T) {
	for _, inbound := range []bool{false, true} {
		t.Run(fmt.Sprintf("inbound=%v", inbound), func(t *testing.T) {
			l := newLab(4, 0, inbound)
			fs := l.flows(64, on("p3", 1))
			if countState(fs, hash.StateFail) == 0 || countState(fs, hash.StateOK) == 0 {
				t.Fatal("bad fixture")
			}
			d := Diagnose(fs)
			if d.Direction != DirectionForward || len(d.Suspects) == 0 {
				t.Fatalf("got %s", describe(d))
			}
			s := d.Suspects[0]
			if l.names[s.Addr] != "r1" || s.Next.IsValid() {
				t.Errorf("suspects[0] = %s, want hop r1\n%s", suspectName(s), describe(d))
			}
			if s.Score != countState(fs, hash.StateFail) {
				t.Errorf("score %d, want %d", s.Score, countState(fs, hash.StateFail))
			}
			if !strings.Contains(d.Text, "right after") {
				t.Errorf("text %q", d.Text)
			}
		})
	}
}

func TestDiagnoseForwardDeadLink(t *testing.T) {
	for _, inbound := range []bool{false, true} {
		t.Run(fmt.Sprintf("inbound=%v", inbound), func(t *testing.T) {
			l := newLab(3, 3, inbound)
			fs := l.flows(96, linkDrop("p1", "q2"))
			d := Diagnose(fs)
			if d.Direction != DirectionForward || len(d.Suspects) == 0 {
				t.Fatalf("got %s", describe(d))
			}
			s := d.Suspects[0]
			if l.names[s.Addr] != "p1" || l.names[s.Next] != "q2" {
				t.Errorf("suspects[0] = %s (%s -> %s), want link p1 -> q2\n%s", suspectName(s), l.names[s.Addr], l.names[s.Next], describe(d))
			}
			if len(d.Suspects) != 1 {
				t.Errorf("want one suspect:\n%s", describe(d))
			}
			if !strings.Contains(s.Evidence, "never after") || !strings.Contains(d.Text, "suspect the link") {
				t.Errorf("evidence %q text %q", s.Evidence, d.Text)
			}
		})
	}
}

func TestDiagnoseForwardLinkBehindSilentRouter(t *testing.T) {
	for _, inbound := range []bool{false, true} {
		t.Run(fmt.Sprintf("inbound=%v", inbound), func(t *testing.T) {
			l := newLab(3, 3, inbound, "p1")
			fs := l.flows(96, linkDrop("p1", "q2"))
			d := Diagnose(fs)
			if d.Direction != DirectionForward || len(d.Suspects) == 0 {
				t.Fatalf("got %s", describe(d))
			}
			s := d.Suspects[0]
			if l.names[s.Addr] != "r1" || l.names[s.Next] != "q2" {
				t.Errorf("suspects[0] = %s, want link r1 (silent p1) -> q2\n%s", suspectName(s), describe(d))
			}
			if !strings.Contains(s.Evidence, "silent hop at TTL 2") || !strings.Contains(d.Text, "silent hop") {
				t.Errorf("evidence %q text %q", s.Evidence, d.Text)
			}
		})
	}
}

func TestDiagnoseForwardBlackholedSecondTier(t *testing.T) {
	// The fabric: 4 first-tier members, 3 second-tier, q2 never
	// answers. 2 seen of 3 behind 4: no reading makes one router of them.
	for _, inbound := range []bool{false, true} {
		t.Run(fmt.Sprintf("4x3 inbound=%v", inbound), func(t *testing.T) {
			l := newLab(4, 3, inbound)
			fs := l.flows(96, on("q2", 2))
			d := Diagnose(fs)
			if d.Direction != DirectionForward || len(d.Suspects) == 0 {
				t.Fatalf("got %s", describe(d))
			}
			s := d.Suspects[0]
			var behind []string
			for _, x := range s.Behind {
				behind = append(behind, l.names[x])
			}
			if s.Kind != "member" || s.Addr.IsValid() || s.TTL != 3 || !slices.Equal(behind, []string{"p1", "p2", "p3", "p4"}) ||
				s.Explains != countState(fs, hash.StateFail) {
				t.Errorf("suspects[0] = %s (behind %v), want the unseen member at TTL 3 behind p1-p4\n%s", suspectName(s), behind, describe(d))
			}
			if !strings.Contains(d.Text, "TTL 3 behind") || !strings.Contains(d.Text, "times likelier than") {
				t.Errorf("text %q", d.Text)
			}
		})
	}
	// 2 seen of 3 behind 3, each answering from one address: they may be
	// one router's addresses toward p1-p3, the one toward the member the
	// answers die at lost with them (a link dead toward the client). One
	// end cannot tell; it says so, the unseen member first, and names the
	// measurement that decides.
	l := newLab(3, 3, false)
	d := Diagnose(l.flows(96, on("q2", 2)))
	if d.Direction != DirectionUnknown || len(d.Suspects) < 2 || d.Suspects[0].Kind != "member" ||
		!slices.ContainsFunc(d.Suspects, func(s Suspect) bool { return s.Direction == DirectionReturn }) ||
		!strings.Contains(d.Text, "trace --responder") {
		t.Errorf("3x3, one address per router: %s", describe(d))
	}
	// Where the routers answer from the interface the probe came in by,
	// each second-tier router shows one address per first-tier member and
	// the grouping joins them: forward again.
	l = newLab(3, 3, true)
	if d := Diagnose(l.flows(96, on("q2", 2))); d.Direction != DirectionForward {
		t.Errorf("3x3 inbound: %s", describe(d))
	}
}

func TestDiagnoseReturn(t *testing.T) {
	cases := []struct {
		name   string
		lab    *labNet
		mutate func(fs []FlowTrace)
		want   string // in the text
	}{
		{"one tier", newLab(4, 0, false), nil, "exonerated"},
		{"two tier inbound", newLab(3, 2, true), nil, "exonerated"},
		{"silent r2", newLab(4, 0, false, "r2"), nil, "cannot be excluded"},
		{"silent p2", newLab(4, 2, false, "p2"), nil, "exonerated"},
		{
			// r2 answers from the interface its reply leaves by, chosen by
			// the reverse hash: the failing flows see an address that no
			// healthy flow sees.
			"r2 answers from an ecmp-chosen interface", newLab(4, 0, false),
			func(fs []FlowTrace) {
				for i := range fs {
					h := &fs[i].Hops[2]
					h.Addr = netip.AddrFrom4([4]byte{198, 19, byte(201 + mix(fs[i].Sport, 3)%4), 2})
				}
			}, "exonerated",
		},
		{
			"per-flow addresses everywhere", newLab(4, 2, true),
			func(fs []FlowTrace) {
				for i := range fs {
					if fs[i].State == hash.StateFail {
						fs[i].Hops[3].Addr = netip.MustParseAddr("198.19.250.1")
						fs[i].Hops[1].Others = []netip.Addr{netip.MustParseAddr("198.19.99.2")}
					}
				}
			}, "exonerated",
		},
	}
	// Two failing flows miss their answers from TTL 3 on, where healthy
	// flows answer: the return fault explains them only as missed answers
	// (a router that rate-limits), and the text says a fault on their way
	// out is not ruled out; the others' forward path is exonerated, theirs
	// alone.
	silentFrom := func(f *FlowTrace, ttl int) {
		for i := ttl - 1; i < len(f.Hops) && !f.Hops[i].Reached; i++ {
			f.Hops[i].Addr, f.Hops[i].Answers, f.Hops[i].Others, f.Hops[i].IDs = netip.Addr{}, 0, nil, nil
		}
	}
	cases = append(cases, struct {
		name   string
		lab    *labNet
		mutate func(fs []FlowTrace)
		want   string
	}{
		"some failing flows silent sooner", newLab(4, 0, false),
		func(fs []FlowTrace) {
			early := 0
			for i := range fs {
				if fs[i].State == hash.StateFail && early < 2 {
					silentFrom(&fs[i], 3)
					early++
				}
			}
		}, "their forward path is exonerated",
	})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := withReturnFault(c.lab, 64)
			if c.mutate != nil {
				c.mutate(fs)
			}
			if countState(fs, hash.StateFail) == 0 {
				t.Fatal("bad fixture")
			}
			d := Diagnose(fs)
			if d.Direction != DirectionReturn {
				t.Fatalf("got %s", describe(d))
			}
			if len(d.Suspects) == 0 || d.Suspects[0].Direction != DirectionReturn || d.Suspects[0].Addr.IsValid() {
				t.Errorf("suspects %v, want a return suspect first, with no address", d.Suspects)
			}
			for _, w := range []string{c.want, "ecmpscan trace CLIENT:", "--sport DPORT", "reverse five-tuple", "198.18.2.2"} {
				if !strings.Contains(d.Text, w) {
					t.Errorf("text lacks %q: %s", w, d.Text)
				}
			}
			early := "2 failing flows go silent sooner (from TTL 3): the return fault explains them only as missed answers, so a fault on their way out is not ruled out"
			if strings.Contains(d.Text, early) != (c.want == "their forward path is exonerated") {
				t.Errorf("text says of failing flows silent sooner (want it: %v): %s", c.want == "their forward path is exonerated", d.Text)
			}
		})
	}
}

func TestDiagnoseNone(t *testing.T) {
	l := newLab(4, 2, false, "p2", "q1")
	fs := l.flows(32, nil)
	d := Diagnose(fs)
	if d.Direction != DirectionNone || len(d.Suspects) != 0 || !strings.Contains(d.Text, "silent hops") {
		t.Errorf("healthy fabric with silent routers: %s", describe(d))
	}
	for i := range fs {
		if i%5 == 0 {
			fs[i].State, fs[i].Received = hash.StateFlaky, 2
		}
	}
	d = Diagnose(fs)
	if d.Direction != DirectionNone || !strings.Contains(d.Text, "partial loss") || !strings.Contains(d.Text, "7 of 32 flows") {
		t.Errorf("flaky only: %s", describe(d))
	}
}

func TestDiagnoseUnknown(t *testing.T) {
	l := newLab(4, 0, false)
	allFail := l.flows(16, func([]string) (int, bool) { return 2, false })
	silentFail := l.flows(32, on("p3", 1))
	for i := range silentFail {
		if silentFail[i].State == hash.StateFail {
			silentFail[i].Hops[0] = TraceHop{TTL: 1, Probes: 3}
		}
	}
	silentR1 := newLab(4, 0, false, "r1").flows(32, on("p3", 1))
	cases := []struct {
		name  string
		flows []FlowTrace
		want  string
	}{
		{"no flows", nil, "no flow was traced"},
		{"no healthy flow", allFail, "no healthy path"},
		{"no hops", []FlowTrace{{Sport: 1, State: hash.StateFail, Sent: 3}, {Sport: 2, State: hash.StateOK, Sent: 3, Received: 3}}, "no hop was traced"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(c.flows)
			if d.Direction != DirectionUnknown || !strings.Contains(d.Text, c.want) || d.Suspects == nil {
				t.Errorf("got %s", describe(d))
			}
		})
	}
	// Failing flows that get no answer at all die at the first hop, or
	// behind a first hop that is silent for everyone: forward, with no
	// address to name.
	for name, fs := range map[string][]FlowTrace{"silent first hop for everyone": silentR1, "silent from TTL 1": silentFail} {
		d := Diagnose(fs)
		if d.Direction != DirectionForward || len(d.Suspects) == 0 || d.Suspects[0].Addr.IsValid() || !strings.Contains(d.Text, "first hop") {
			t.Errorf("%s: got %s", name, describe(d))
		}
	}
}

// hopsOf builds hops from addresses, "*" for silence and "=" for the
// destination.
func hopsOf(addrs ...string) []TraceHop {
	var hs []TraceHop
	for i, a := range addrs {
		h := TraceHop{TTL: i + 1, Probes: 3}
		switch a {
		case "*":
		case "=":
			h.Addr, h.Reached, h.Answers = server, true, 3
		default:
			h.Addr, h.Answers, h.ICMPType = netip.MustParseAddr(a), 3, 11
		}
		hs = append(hs, h)
	}
	return hs
}

func flowOf(sport uint16, st hash.State, addrs ...string) FlowTrace {
	f := FlowTrace{Sport: sport, State: st, Sent: 3, Hops: hopsOf(addrs...)}
	switch st {
	case hash.StateOK:
		f.Received, f.ReachedTTL = 3, len(addrs)
	case hash.StateFlaky:
		f.Received, f.ReachedTTL = 1, len(addrs)
	}
	return f
}

func TestDiagnoseOtherForwardShapes(t *testing.T) {
	const (
		r1 = "198.18.255.1"
		p1 = "198.18.255.11"
		p2 = "198.18.255.12"
		r2 = "198.18.255.99"
		px = "198.19.9.2"
	)
	healthy := []FlowTrace{
		flowOf(1, hash.StateOK, r1, p1, r2, "="),
		flowOf(2, hash.StateOK, r1, p2, r2, "="),
		flowOf(3, hash.StateOK, r1, p1, r2, "="),
	}
	unreach := flowOf(10, hash.StateFail, r1, p2, "*", "*")
	unreach.Hops[1].ICMPType, unreach.Hops[1].ICMPCode = 3, 13
	cases := []struct {
		name       string
		failing    []FlowTrace
		addr, next string
		want       string
	}{
		{"hop no healthy flow crosses", []FlowTrace{
			flowOf(10, hash.StateFail, r1, px, "*", "*", "*"),
			flowOf(11, hash.StateFail, r1, px, "*", "*", "*"),
		}, px, "", "which no healthy flow crosses"},
		{"destination unreachable", []FlowTrace{unreach}, p2, "", "destination unreachable"},
		{"routing loop", []FlowTrace{
			flowOf(10, hash.StateFail, r1, p1, px, p1, px, p1, px),
		}, p1, px, "loop"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(append(slices.Clone(healthy), c.failing...))
			if d.Direction != DirectionForward || len(d.Suspects) == 0 {
				t.Fatalf("got %s", describe(d))
			}
			s := d.Suspects[0]
			if s.Addr.String() != c.addr || (c.next == "") != !s.Next.IsValid() || (c.next != "" && s.Next.String() != c.next) {
				t.Errorf("suspects[0] = %s, want %s -> %q", suspectName(s), c.addr, c.next)
			}
			if !strings.Contains(s.Evidence+d.Text, c.want) {
				t.Errorf("no %q in %s", c.want, describe(d))
			}
		})
	}
}

func TestDiagnoseMixedEvidence(t *testing.T) {
	const (
		r1 = "198.18.255.1"
		p1 = "198.18.255.11"
		p2 = "198.18.255.12"
		r2 = "198.18.255.99"
	)
	flows := []FlowTrace{
		flowOf(1, hash.StateOK, r1, p1, r2, "="),
		flowOf(2, hash.StateOK, r1, p2, r2, "="),
		flowOf(3, hash.StateFail, r1, "*", "*", "*"),
		flowOf(4, hash.StateFail, r1, "*", "*", "*"),
		flowOf(5, hash.StateFail, r1, p2, r2, "*"),
		flowOf(6, hash.StateFlaky, r1, p1, r2, "="),
	}
	// Flows that die after r1 and one that gets as far as healthy ones:
	// two deaths after r1 carry it where healthy flows show those hops
	// answer; with one or two healthy flows, hops that happened to be
	// silent for both failing flows are not ruled out 10 to 1 (unknown),
	// but nothing points back. One of each needs two faults.
	bothWays := "and the failing flows' answers are lost on the way back"
	more := slices.Clone(flows)
	for i := range 6 {
		more = append(more, flowOf(uint16(10+i), hash.StateOK, r1, []string{p1, p2}[i%2], r2, "="))
	}
	d := Diagnose(more)
	if d.Direction != DirectionForward || !strings.Contains(d.Text, "1 flaky flow") {
		t.Errorf("2 forward, 1 return, 8 healthy: %s", describe(d))
	}
	for _, few := range [][]FlowTrace{flows, flows[:5:5][1:]} {
		if d := Diagnose(few); d.Direction == DirectionReturn || d.Direction == DirectionNone {
			t.Errorf("2 forward, 1 return, %d healthy: %s", len(few)-4, describe(d))
		}
	}
	// One of each among four flows: the one that gets as far as healthy
	// flows do is lost on the way back; the other may be too, its hops
	// silent by chance, and a second fault for one flow is not named. So
	// return, unknown, or both ways; never forward alone.
	split := append(slices.Clone(flows[:3]), flowOf(5, hash.StateFail, r1, p2, r2, "*"))
	if d := Diagnose(split); d.Direction == DirectionForward && !strings.Contains(d.Text, bothWays) {
		t.Errorf("1 forward, 1 return: %s", describe(d))
	}
}

func TestDiagnoseDeterministic(t *testing.T) {
	l := newLab(3, 3, true, "p1")
	fs := l.flows(96, linkDrop("p1", "q2"))
	want := Diagnose(fs)
	for k := 1; k < 5; k++ {
		shuffled := slices.Clone(fs)
		for i := range shuffled {
			j := (i*7 + k*13) % len(shuffled)
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		if got := Diagnose(shuffled); !reflect.DeepEqual(got, want) {
			t.Fatalf("order changes the diagnosis:\n%s\nvs\n%s", describe(got), describe(want))
		}
	}
}

func TestDiagnoseRaggedHops(t *testing.T) {
	const r1, p1, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.99"
	flows := []FlowTrace{
		flowOf(1, hash.StateOK, r1, p1, r2, "="),
		flowOf(2, hash.StateOK, r1),                // cut short
		flowOf(3, hash.StateFail, r1, p1),          // cut short
		flowOf(4, hash.StateFail, r1, p1, r2, "*"), // return-like
		flowOf(5, hash.StateFail, r1, p1, r2, "*", "*", "*", "*", "*", "*", "*"),
	}
	flows[0].Hops[1].Answers = 1 // partial answers still count as an answer
	d := Diagnose(flows)
	if d.Direction != DirectionReturn {
		t.Errorf("got %s", describe(d))
	}
}

// crosses reports whether a return path goes from a to b.
func crosses(a, b string) func([]string) bool {
	return func(path []string) bool {
		for i := 0; i+1 < len(path); i++ {
			if path[i] == a && path[i+1] == b {
				return true
			}
		}
		return false
	}
}

func through(node string) func([]string) bool {
	return func(path []string) bool { return slices.Contains(path, node) }
}

var physicsBase, physicsRanges = 20000, 40

// TestDiagnoseLabPhysics runs the shapes of the end-to-end tests over many
// source port ranges, with the lab's return paths: a link that drops both
// ways also fails flows on the way back and eats some time-exceeded
// answers; a return blackhole silences the router itself and the answers
// of routers behind it.
// forwardLink checks for a forward diagnosis whose first suspect is the
// link from router "from" to router "next".
func forwardLink(from, next string) func(*labNet, Diagnosis) bool {
	return func(l *labNet, d Diagnosis) bool {
		return d.Direction == DirectionForward && len(d.Suspects) > 0 &&
			l.names[d.Suspects[0].Next] == next && l.names[d.Suspects[0].Addr] == from
	}
}

func TestDiagnoseLabPhysics(t *testing.T) {
	// A link that drops both ways leaves few healthy flows through its near
	// end and hides the far end's own answers; with 48 ports over 9 paths
	// some port ranges do not show every live next hop of p1, or show a
	// single flow dying forward. Those few may name another candidate (the
	// evidence lists q2 among "other candidates") or say return.
	const bothWaysMisses = 4
	// Behind the silent p1, the flows that die forward look like those of
	// a return member p1 (silent, so its own errors are lost too), and the
	// three q, one address each behind three p, may be one router's
	// addresses toward them (readings.go), which makes p1's share of the
	// flows a third either way: with 48 ports a third of the ranges come
	// out return (the link also loses answers on the way back, through
	// p1).
	const silentBothWaysMisses = 14
	const flowHashedReturnMisses = 3
	cases := []struct {
		name   string
		lab    func() *labNet
		n      int
		fwd    fault
		check  func(l *labNet, d Diagnosis) bool
		maxBad int
	}{
		{"link-drop p1-q2 both ways behind silent p1", func() *labNet {
			l := newLab(3, 3, false, "p1")
			l.retLost = crosses("q2", "p1")
			return l
		}, 48, linkDrop("p1", "q2"), func(l *labNet, d Diagnosis) bool {
			s := d.Suspects
			return d.Direction == DirectionForward && len(s) > 0 && (l.names[s[0].Next] == "q2" || !s[0].Next.IsValid()) &&
				slices.Contains([]string{"r1", "p1"}, l.names[s[0].Addr])
		}, silentBothWaysMisses},
		// With 48 flows the link from the silent p1 to q2 and the hop
		// after r1 are sometimes told apart by chance (r1, the router
		// before the fault, is named either way). With 48 ports only a
		// handful fail: a range with one failing flow is chance, and a
		// few put a return member at the silent p1 within 10 to 1
		// (unknown).
		{"link-drop p1-q2 one way behind silent p1", func() *labNet {
			return newLab(3, 3, false, "p1")
		}, 48, linkDrop("p1", "q2"), func(l *labNet, d Diagnosis) bool {
			return d.Direction == DirectionForward && len(d.Suspects) > 0 && l.names[d.Suspects[0].Addr] == "r1" &&
				(l.names[d.Suspects[0].Next] == "q2" || !d.Suspects[0].Next.IsValid())
		}, 3},
		{"link-drop p1-q2 both ways", func() *labNet {
			l := newLab(3, 3, false)
			l.retLost = crosses("q2", "p1")
			return l
		}, 48, linkDrop("p1", "q2"), forwardLink("p1", "q2"), bothWaysMisses},
		{"link-drop p1-q2 both ways inbound", func() *labNet {
			l := newLab(3, 3, true)
			l.retLost = crosses("q2", "p1")
			return l
		}, 48, linkDrop("p1", "q2"), forwardLink("p1", "q2"), bothWaysMisses},
		{"link-drop p1-q2 both ways, 96 ports", func() *labNet {
			l := newLab(3, 3, false)
			l.retLost = crosses("q2", "p1")
			return l
		}, 96, linkDrop("p1", "q2"), forwardLink("p1", "q2"), 1},
		{"8x8 inbound, silent p3, link-drop p1-q5 both ways", func() *labNet {
			l := newLab(8, 8, true, "p3")
			l.retLost = crosses("q5", "p1")
			return l
		}, 512, linkDrop("p1", "q5"), forwardLink("p1", "q5"), 1},
		{"8x8 inbound, q2 loses answers via p1, link-drop p1-q5", func() *labNet {
			l := newLab(8, 8, true)
			l.retLost = crosses("q2", "p1")
			return l
		}, 512, linkDrop("p1", "q5"), forwardLink("p1", "q5"), 1},
		{"blackhole-fwd p2", func() *labNet { return newLab(4, 0, false) }, 32, on("p2", 1),
			func(l *labNet, d Diagnosis) bool {
				return d.Direction == DirectionForward && len(d.Suspects) > 0 && l.names[d.Suspects[0].Addr] == "r1"
			}, 0},
		// This model hashes each router's ICMP errors on the probe's tuple,
		// independently of the SYN-ACKs, so a return fault also loses the
		// time-exceeded of some failing flows, which then look as if they
		// died forward. The verdict weighs such forward deaths against
		// return ones (a link dead both ways splits its flows between the
		// directions the same way), so a few ranges come out forward here.
		// The lab's routers send their errors along one fixed path, where
		// this cannot happen.
		{"blackhole-ret q1", func() *labNet {
			l := newLab(2, 2, false)
			l.retLost = through("q1")
			return l
		}, 32, nil, func(l *labNet, d Diagnosis) bool { return d.Direction == DirectionReturn }, flowHashedReturnMisses},
		{"blackhole-ret p4", func() *labNet {
			l := newLab(4, 0, false)
			l.retLost = through("p4")
			return l
		}, 32, nil, func(l *labNet, d Diagnosis) bool { return d.Direction == DirectionReturn }, flowHashedReturnMisses - 1},
		{"blackhole-ret q1 inbound", func() *labNet {
			l := newLab(2, 2, true)
			l.retLost = through("q1")
			return l
		}, 32, nil, func(l *labNet, d Diagnosis) bool { return d.Direction == DirectionReturn }, flowHashedReturnMisses},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := 0
			for r := range physicsRanges {
				l := c.lab()
				l.base = uint16(physicsBase + 97*r)
				fs := l.flows(c.n, c.fwd)
				if countState(fs, hash.StateFail) == 0 {
					continue
				}
				if d := Diagnose(fs); !c.check(l, d) {
					bad++
					if bad <= 3 && testing.Verbose() {
						t.Logf("sports from %d: %s", l.base, describe(d))
					}
				}
			}
			if bad > c.maxBad {
				t.Errorf("%d of %d port ranges diagnosed wrong (at most %d allowed)", bad, physicsRanges, c.maxBad)
			} else if bad > 0 {
				t.Logf("%d of %d port ranges diagnosed wrong (at most %d allowed)", bad, physicsRanges, c.maxBad)
			}
		})
	}
}

// Return faults on routers that send their time-exceeded along the flow's
// return path (plain Linux): failing flows of every first-tier member go
// silent at r2, which every healthy flow passes. No single forward fault
// explains that; a forward fault behind one member, or an unseen member of
// a stage that healthy flows spread over, stays forward.
func TestDiagnoseSpreadReturn(t *testing.T) {
	const (
		r1 = "198.18.255.1"
		r2 = "198.18.255.99"
	)
	p := func(i int) string { return fmt.Sprintf("198.18.255.%d", 10+i) }
	q := func(i int) string { return fmt.Sprintf("198.18.255.%d", 40+i) }
	var ret, fwdLink, unseen []FlowTrace
	sport := uint16(1)
	add := func(list *[]FlowTrace, st hash.State, hops ...string) {
		*list = append(*list, flowOf(sport, st, hops...))
		sport++
	}
	for i := 1; i <= 4; i++ {
		for range 4 {
			add(&ret, hash.StateOK, r1, p(i), r2, "=")
			add(&fwdLink, hash.StateOK, r1, p(i), r2, "=")
		}
		add(&ret, hash.StateFail, r1, p(i), "*", "*")
		add(&fwdLink, map[bool]hash.State{true: hash.StateFail, false: hash.StateOK}[i == 2], r1, p(i), "*", "*")
	}
	// Without more, an unseen forward member next to r2 explains the
	// spread deaths as well: unknown, and the measurement that decides.
	if d := Diagnose(ret); d.Direction != DirectionUnknown || !strings.Contains(d.Text, "trace --responder") {
		t.Errorf("spread deaths, no silent member: %s", describe(d))
	}
	// The bad return member p5 forwards toward the server but sends
	// nothing back: silent for every flow, healthy ones go on after it.
	for range 4 {
		add(&ret, hash.StateOK, r1, "*", r2, "=")
	}
	add(&ret, hash.StateFail, r1, "*", "*", "*")
	// Enough flows (96) to tell the quarter an unseen fourth q fails from
	// the third one bad p would: the three q could be one router's
	// addresses toward p1-p3.
	for i := 1; i <= 3; i++ {
		for j := 1; j <= 3; j++ {
			for range 8 {
				add(&unseen, hash.StateOK, r1, p(i), q(j), r2, "=")
			}
		}
		for range 8 {
			add(&unseen, hash.StateFail, r1, p(i), "*", "*", "*")
		}
	}
	if d := Diagnose(ret); d.Direction != DirectionReturn || !strings.Contains(d.Text, "return stage of TTL 2") {
		t.Errorf("return fault, flow-hashed ICMP: %s", describe(d))
	}
	// The same where r2 answers from the link its error leaves by, a
	// different address per flow (plain Linux): the addresses right before
	// the destination are the last hop.
	var retOut []FlowTrace
	r2link := func(i int) string { return fmt.Sprintf("198.19.%d.2", 100+i) }
	for i := 1; i <= 4; i++ {
		for j := range 4 {
			add(&retOut, hash.StateOK, r1, p(i), r2link(1+(i+j)%4), "=")
		}
		add(&retOut, hash.StateFail, r1, p(i), "*", "*")
	}
	for j := range 4 {
		add(&retOut, hash.StateOK, r1, "*", r2link(1+j), "=")
	}
	// r2's four addresses are one per link toward the p stage: read as one
	// router, an unseen member beside it would fail half the flows, not a
	// fifth.
	if d := Diagnose(retOut); d.Direction != DirectionReturn {
		t.Errorf("return fault, r2 answering per link: %s", describe(d))
	}
	// fwdLink's healthy flows through p2 all go on, so its failures (only
	// via p2) mark the link p2 -> r2 dead: forward.
	fwdLink = slices.DeleteFunc(fwdLink, func(f FlowTrace) bool {
		return f.State == hash.StateOK && f.Hops[1].Addr.String() == p(2) && f.Sport%4 == 0
	})
	if d := Diagnose(fwdLink); d.Direction != DirectionForward {
		t.Errorf("dead link behind one member: %s", describe(d))
	}
	if d := Diagnose(unseen); d.Direction != DirectionForward {
		t.Errorf("unseen second-tier member: %s", describe(d))
	}
	// A forward blackhole at the unseen q2 of two, behind three p, one of
	// them silent: half the flows fail, not the third that one bad p
	// would fail. Forward, silent router or not.
	var halfDead []FlowTrace
	for i := 1; i <= 3; i++ {
		hop := p(i)
		if i == 3 {
			hop = "*"
		}
		for range 16 { // 96 flows: enough to tell a half from a third
			add(&halfDead, hash.StateOK, r1, hop, q(1), r2, "=")
			add(&halfDead, hash.StateFail, r1, hop, "*", "*", "*")
		}
	}
	if d := Diagnose(halfDead); d.Direction != DirectionForward {
		t.Errorf("unseen q2 of two, a silent p3: %s", describe(d))
	}
	// Failing flows of every member, but split unlike the healthy ones
	// (nearly all behind p1): not the return pattern.
	var skew []FlowTrace
	for i := 1; i <= 4; i++ {
		for range 6 {
			add(&skew, hash.StateOK, r1, p(i), r2, "=")
		}
	}
	for range 4 {
		add(&skew, hash.StateOK, r1, "*", r2, "=") // a silent member, as above
	}
	for range 12 {
		add(&skew, hash.StateFail, r1, p(1), "*", "*")
	}
	add(&skew, hash.StateFail, r1, p(2), "*", "*")
	if d := Diagnose(skew); d.Direction != DirectionForward {
		t.Errorf("failures concentrated behind one member: %s", describe(d))
	}
}

// TestSilenceAtTheOneFirstHop: r1, every flow's first hop, rate-limits
// its errors (it answers one of three probes, and some flows not at all);
// a flow it left unanswered still crossed it, so the failing flows silent
// there die after r1 with the others: one fault right after r1, not a
// second place after a silent hop of their own.
func TestSilenceAtTheOneFirstHop(t *testing.T) {
	const r1, p1, p2, p3 = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.13"
	var flows []FlowTrace
	sport := uint16(1)
	first := func(i int) string {
		if i%3 == 0 {
			return "*"
		}
		return r1
	}
	for i := range 24 {
		flows = append(flows, flowOf(sport, hash.StateOK, first(i), []string{p1, p2, p3}[i%3], "="))
		sport++
	}
	for i := range 8 {
		flows = append(flows, flowOf(sport, hash.StateFail, first(i), "*", "*"))
		sport++
	}
	for i := range flows {
		if h := &flows[i].Hops[0]; h.Addr.IsValid() {
			h.Answers = 1
		}
	}
	if got := RateLimitedTTLs(flows); !slices.Equal(got, []int{1}) {
		t.Fatalf("rate-limited TTLs %v, want r1's", got)
	}
	d := Diagnose(flows)
	h := d.Hypotheses[0]
	if d.Direction != DirectionForward || h.Kind != HypNextHop || h.Addr != netip.MustParseAddr(r1) || h.Silent || h.Explains != 8 || h.And != nil {
		t.Fatalf("%s: %+v; want one fault right after r1 explaining all 8", describe(d), h)
	}
}

// TestReturnMemberOfASilentStage: the second tier answers no flow (q1
// silent by configuration, q2 losing the answers and its own errors with
// them), and the failing half go silent where r2's errors ride q2 back.
// A member of that stage losing the answers fits them as well as an
// unseen member beside r2 does: not a forward verdict.
func TestReturnMemberOfASilentStage(t *testing.T) {
	const r1, p1, p2, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.99"
	var flows []FlowTrace
	for i := range 32 {
		p := []string{p1, p2}[i%2]
		if i%4 < 2 {
			flows = append(flows, flowOf(uint16(i+1), hash.StateOK, r1, p, "*", r2, "="))
		} else {
			flows = append(flows, flowOf(uint16(i+1), hash.StateFail, r1, p, "*", "*", "*"))
		}
	}
	d := Diagnose(flows)
	found := slices.ContainsFunc(d.Hypotheses, func(h Hypothesis) bool { return h.Kind == HypReturnMember && h.TTL == 3 })
	if d.Direction == DirectionForward || !found {
		t.Errorf("%s; want no forward verdict, and a return member at TTL 3 among %v", describe(d), d.Hypotheses)
	}
}
