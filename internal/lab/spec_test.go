package lab

import (
	"errors"
	"maps"

	"github.com/ecmpscan/ecmpscan/hash"
	"net/netip"
	"strings"
	"testing"
)

func TestParseFaultRoundTrip(t *testing.T) {
	for _, s := range []string{
		"blackhole-fwd@p2", "blackhole-ret@q1", "drop-synack@p1", "loss=20@p3",
		"link-drop@p1-q2", "silent@q1", "loss=100@r2", "link-drop@r1-p16", "link-oneway@q2-p1",
	} {
		f, err := ParseFault(s)
		if err != nil {
			t.Errorf("ParseFault(%q): %v", s, err)
			continue
		}
		if got := f.String(); got != s {
			t.Errorf("ParseFault(%q).String() = %q", s, got)
		}
	}
	f, _ := ParseFault("link-drop@p1-q2")
	if f.Node != "p1" || f.Peer != "q2" || f.Kind != LinkDrop {
		t.Errorf("link-drop parsed as %+v", f)
	}
	f, _ = ParseFault("loss=20@p3")
	if f.Percent != 20 || f.Node != "p3" {
		t.Errorf("loss parsed as %+v", f)
	}
}

func TestParseFaultErrors(t *testing.T) {
	for _, s := range []string{
		"", "p2", "blackhole@p2", "blackhole-fwd", "blackhole-fwd@", "loss@p1", "loss=0@p1",
		"loss=101@p1", "loss=x@p1", "drop-synack=3@p1", "link-drop@p1", "link-drop@p1-", "link-oneway@p1",
		"silent@x1", "silent@P1", "silent@p0",
	} {
		_, err := ParseFault(s)
		if err == nil {
			t.Errorf("ParseFault(%q) succeeded", s)
		} else if !errors.Is(err, ErrBadSpec) {
			t.Errorf("ParseFault(%q) error %v does not wrap ErrBadSpec", s, err)
		}
	}
}

func mustFaults(t *testing.T, ss ...string) []Fault {
	t.Helper()
	var fs []Fault
	for _, s := range ss {
		f, err := ParseFault(s)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	return fs
}

func TestValidate(t *testing.T) {
	good := []Spec{
		{Name: "demo", Width: 4},
		{Name: "a1", Width: 1},
		{Name: "x", Width: 16, Width2: 16, Ports: []uint16{1, 65535}},
		{Name: "f", Width: 2, Width2: 3, Faults: mustFaults(t, "link-drop@p1-q3", "link-drop@q3-r2",
			"link-drop@r1-p2", "loss=5@q1", "silent@r1", "blackhole-ret@r2", "drop-synack@p2")},
		{Name: "g", Width: 3, Faults: mustFaults(t, "link-drop@p3-r2", "blackhole-fwd@p3")},
		{Name: "o", Width: 2, Routes: RoutesAll, IPOptions: IPOptionsDrop},
	}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("Validate(%+v): %v", s, err)
		}
	}
	bad := []Spec{
		{Name: "", Width: 4},
		{Name: "Demo", Width: 4},
		{Name: "toolongname", Width: 4},
		{Name: "a-b", Width: 4},
		{Name: "d", Width: 0},
		{Name: "d", Width: 17},
		{Name: "d", Width: 2, Width2: -1},
		{Name: "d", Width: 2, Width2: 17},
		{Name: "d", Width: 2, Ports: []uint16{0}},
		{Name: "d", Width: 2, Ports: []uint16{80, 80}},
		{Name: "d", Width: 2, Faults: mustFaults(t, "silent@p3")},
		{Name: "d", Width: 2, Faults: mustFaults(t, "silent@q1")},
		{Name: "d", Width: 2, Faults: []Fault{{Kind: Silent, Node: "c"}}},
		{Name: "d", Width: 2, Faults: []Fault{{Kind: Silent, Node: "s"}}},
		{Name: "d", Width: 2, Faults: mustFaults(t, "link-drop@r1-r2")},
		{Name: "d", Width: 2, Width2: 2, Faults: mustFaults(t, "link-drop@p1-r2")},
		{Name: "d", Width: 2, Width2: 2, Faults: mustFaults(t, "link-drop@p1-p2")},
		{Name: "d", Width: 2, Faults: mustFaults(t, "silent@p1", "silent@p1")},
		{Name: "d", Width: 2, Faults: []Fault{{Kind: Loss, Node: "p1"}}},
		{Name: "d", Width: 2, Faults: []Fault{{Kind: "meltdown", Node: "p1"}}},
		{Name: "d", Width: 2, Faults: []Fault{{Kind: Silent, Node: "p1", Peer: "r1"}}},
		{Name: "d", Width: 2, HashSeed: "random"},
		{Name: "d", Width: 2, IPOptions: "ignore"},
	}
	for _, s := range bad {
		err := s.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) succeeded", s)
		} else if !errors.Is(err, ErrBadSpec) {
			t.Errorf("Validate(%+v) error %v does not wrap ErrBadSpec", s, err)
		}
	}
}

func TestRouterSeedsDiffer(t *testing.T) {
	f := newFabric(Spec{Name: "x", Width: 16, Width2: 16, Seed: 7, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	seen := map[uint32]string{}
	for _, r := range f.Routers {
		s := f.Seeds[r]
		if s == 0 {
			t.Errorf("%s: seed 0 means random to the kernel", r)
		}
		if o, dup := seen[s]; dup {
			t.Errorf("%s and %s share seed %d", r, o, s)
		}
		seen[s] = r
		if RouterSeed(7, r) != s {
			t.Errorf("%s: seed not deterministic", r)
		}
	}
	if len(f.Routers) != 34 {
		t.Errorf("%d routers, want 34", len(f.Routers))
	}
	if RouterSeed(7, "p1") == RouterSeed(8, "p1") {
		t.Error("spec seed does not change router seeds")
	}
}

// One seed on every router (--hash-seed shared): never 0, the spec
// seed's, and another spec seed gives another.
func TestSharedHashSeed(t *testing.T) {
	seeds := func(seed uint32) map[uint32]bool {
		f := newFabric(Spec{Name: "x", Width: 4, Width2: 3, Seed: seed, HashSeed: HashSeedShared})
		out := map[uint32]bool{}
		for _, r := range f.Routers {
			out[f.Seeds[r]] = true
		}
		return out
	}
	a, b := seeds(7), seeds(8)
	if len(a) != 1 || a[0] || len(b) != 1 || maps.Equal(a, b) {
		t.Errorf("seeds %v and %v: want one, not 0, per spec seed", a, b)
	}
}

func TestAddressing(t *testing.T) {
	for _, spec := range []Spec{
		{Name: "a", Width: 4},
		{Name: "b", Width: 2, Width2: 3},
		{Name: "c", Width: 16, Width2: 16},
	} {
		f := newFabric(spec)
		topo := f.topology()
		want := 2 + 2*spec.Width
		if spec.Width2 > 0 {
			want = 2 + spec.Width + spec.Width*spec.Width2 + spec.Width2
		}
		if len(f.Links) != want {
			t.Errorf("%s: %d links, want %d", spec.Name, len(f.Links), want)
		}
		internal4 := netip.MustParsePrefix("198.19.0.0/16")
		internal6 := netip.MustParsePrefix("2001:db8:ff00::/40")
		lab4 := netip.MustParsePrefix("198.18.0.0/15")
		lab6 := netip.MustParsePrefix("2001:db8::/32")
		seen := map[netip.Addr]bool{}
		nets := map[netip.Prefix]bool{}
		for _, l := range f.Links {
			for _, p := range []netip.Prefix{l.A4, l.B4, l.A6, l.B6} {
				if !p.IsValid() || seen[p.Addr()] {
					t.Errorf("%s: link %s-%s: bad or duplicate address %s", spec.Name, l.A, l.B, p)
				}
				seen[p.Addr()] = true
				if !lab4.Contains(p.Addr()) && !lab6.Contains(p.Addr()) {
					t.Errorf("%s: %s outside the lab ranges", spec.Name, p)
				}
			}
			if l.A4.Masked() != l.B4.Masked() || l.A6.Masked() != l.B6.Masked() {
				t.Errorf("%s: link %s-%s ends on different subnets: %s %s %s %s", spec.Name, l.A, l.B, l.A4, l.B4, l.A6, l.B6)
			}
			if nets[l.A4.Masked()] || nets[l.A6.Masked()] {
				t.Errorf("%s: link %s-%s reuses a subnet", spec.Name, l.A, l.B)
			}
			nets[l.A4.Masked()], nets[l.A6.Masked()] = true, true
			if l.A != "c" && l.B != "s" {
				if !internal4.Contains(l.A4.Addr()) || !internal6.Contains(l.A6.Addr()) {
					t.Errorf("%s: internal link %s-%s outside 198.19/16 or ff00::/40: %s %s", spec.Name, l.A, l.B, l.A4, l.A6)
				}
			}
			for _, ifn := range []string{l.IfA(), l.IfB()} {
				if len(ifn) > 15 {
					t.Errorf("interface name %q too long", ifn)
				}
			}
			if topo.nodeOf(l.A4.Addr()) != l.A || topo.nodeOf(l.B6.Addr()) != l.B {
				t.Errorf("nodeOf does not map %s-%s back", l.A, l.B)
			}
		}
		if f.Client4 != netip.MustParseAddr("198.18.1.1") || f.Server6 != netip.MustParseAddr("2001:db8:2::2") {
			t.Errorf("end addresses %s %s", f.Client4, f.Server6)
		}
		if got := f.Namespace("p3"); got != "esl-"+spec.Name+"-p3" {
			t.Errorf("Namespace = %q", got)
		}
	}
	// Inbound ICMP source mode: the routes carry no preferred source
	// (TestICMPSourceSpec checks the router-ID mode's).
	f := newFabric(Spec{Name: "b", Width: 2, Width2: 3, ICMPSource: ICMPFromInbound, ICMPPath: ICMPPathFixed})
	if got := f.Addr("q3", "p2", false); got != netip.MustParseAddr("198.19.102.34") {
		t.Errorf("q3 on p2 link = %s", got)
	}
	if got := f.Addr("q3", "p2", true); got != netip.MustParseAddr("2001:db8:ff00:102:32::2") {
		t.Errorf("q3 on p2 link (v6) = %s", got)
	}
	if got := f.Addr("r1", "c", false); got != netip.MustParseAddr("198.18.1.254") {
		t.Errorf("r1 client side = %s", got)
	}
	rs := strings.Join(f.topology().routes("p2"), "\n")
	for _, want := range []string{
		"route add 198.18.2.0/24 nexthop via 198.19.102.2 dev to-q1 nexthop via 198.19.102.18 dev to-q2 nexthop via 198.19.102.34 dev to-q3",
		"route add 198.18.1.0/24 via 198.19.2.1 dev to-r1",
		"route add 2001:db8:1::/64 via 2001:db8:ff00:2::1 dev to-r1",
	} {
		if !strings.Contains(rs, want) {
			t.Errorf("p2 routes lack %q:\n%s", want, rs)
		}
	}
	var main []string // without the fixed ICMP path's table (TestICMPPathLines)
	for _, r := range f.topology().routes("r2") {
		if !strings.Contains(r, " table ") {
			main = append(main, r)
		}
	}
	if len(main) != 2 || !strings.Contains(main[0], "198.18.1.0/24 nexthop") {
		t.Errorf("r2 routes: %q", main)
	}
}

func TestParseRouteGet(t *testing.T) {
	cases := []struct {
		in   string
		want routeGet
		err  bool
	}{
		{"198.18.2.2 from 198.18.1.1 via 198.19.2.2 dev to-p2 \n    cache iif to-c ",
			routeGet{Dst: netip.MustParseAddr("198.18.2.2"), Via: netip.MustParseAddr("198.19.2.2"), Dev: "to-p2"}, false},
		{"198.18.2.2 from 198.18.1.1 dev to-s table main \n    cache iif to-q1 ",
			routeGet{Dst: netip.MustParseAddr("198.18.2.2"), Dev: "to-s"}, false},
		{"2001:db8:2::2 from 2001:db8:1::1 via 2001:db8:ff00:1::2 dev to-p1 metric 1024 iif to-c pref medium",
			routeGet{Dst: netip.MustParseAddr("2001:db8:2::2"), Via: netip.MustParseAddr("2001:db8:ff00:1::2"), Dev: "to-p1"}, false},
		{"blackhole 198.18.2.2 from 198.18.1.1 dev lo",
			routeGet{Type: "blackhole", Dst: netip.MustParseAddr("198.18.2.2"), Dev: "lo"}, false},
		{"unreachable 2001:db8:2::2 from :: dev lo proto kernel metric 4294967295 error -101 pref medium",
			routeGet{Type: "unreachable", Dst: netip.MustParseAddr("2001:db8:2::2"), Dev: "lo"}, false},
		{"198.18.2.2 from 198.18.1.1 via inet6 fe80::1 dev to-p1",
			routeGet{Dst: netip.MustParseAddr("198.18.2.2"), Via: netip.MustParseAddr("fe80::1"), Dev: "to-p1"}, false},
		{"", routeGet{}, true},
		{"garbage here", routeGet{}, true},
		{"198.18.2.2 from 198.18.1.1 via 198.19.2.2", routeGet{}, true},
	}
	for _, c := range cases {
		got, err := parseRouteGet(c.in)
		if (err != nil) != c.err {
			t.Errorf("parseRouteGet(%q) error %v", c.in, err)
			continue
		}
		if !c.err && got != c.want {
			t.Errorf("parseRouteGet(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
	recs := splitRecords("a via x dev y\n    cache iif z\n\nb dev q\nc dev r\n    cache\n")
	if len(recs) != 3 || !strings.HasPrefix(recs[1], "b ") || !strings.Contains(recs[2], "cache") {
		t.Errorf("splitRecords = %q", recs)
	}
}

func TestNftRules(t *testing.T) {
	f := newFabric(Spec{Name: "n", Width: 2, Width2: 2, Faults: mustFaults(t,
		"drop-synack@p1", "loss=20@p1", "link-drop@p1-q2", "silent@q2"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	p1 := f.nftRules("p1")
	for _, want := range []string{"table inet esl", "hook forward", "tcp flags & (syn | ack) == (syn | ack)",
		"numgen random mod 100 < 20", `oifname "to-q2"`} {
		if !strings.Contains(p1, want) {
			t.Errorf("p1 rules lack %q:\n%s", want, p1)
		}
	}
	q2 := f.nftRules("q2")
	for _, want := range []string{`oifname "to-p1"`, "hook output", "icmp type time-exceeded", "icmpv6 type time-exceeded"} {
		if !strings.Contains(q2, want) {
			t.Errorf("q2 rules lack %q:\n%s", want, q2)
		}
	}
	if r := f.nftRules("r1"); r != "" {
		t.Errorf("r1 has rules:\n%s", r)
	}
}

func TestApplyNftFaults(t *testing.T) {
	f := newFabric(Spec{Name: "n", Width: 2, Width2: 2, Faults: mustFaults(t,
		"drop-synack@p1", "link-drop@p2-q1"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	lossy := newFabric(Spec{Name: "l", Width: 2, Width2: 2, Faults: mustFaults(t, "loss=20@q1"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	hops := func(nodes ...string) []Hop {
		end := "to-s"
		if nodes[0] == "r2" {
			end = "to-c"
		}
		var hs []Hop
		for i, n := range nodes {
			h := Hop{Node: n, Out: end}
			if i+1 < len(nodes) {
				h.Out = IfName(nodes[i+1])
			}
			hs = append(hs, h)
		}
		return hs
	}
	tcp := tuple4(1000, 80)
	cases := []struct {
		f        *Fabric
		fwd, ret []string
		want     Verdict
	}{
		{f, []string{"r1", "p1", "q2", "r2"}, []string{"r2", "q2", "p1", "r1"}, Fails}, // SYN-ACK through p1
		{f, []string{"r1", "p1", "q2", "r2"}, []string{"r2", "q2", "p2", "r1"}, Works}, // SYN through p1 is fine
		{f, []string{"r1", "p2", "q1", "r2"}, []string{"r2", "q2", "p2", "r1"}, Fails}, // dead link forward
		{f, []string{"r1", "p2", "q2", "r2"}, []string{"r2", "q1", "p2", "r1"}, Fails}, // dead link on return
		{lossy, []string{"r1", "p2", "q2", "r2"}, []string{"r2", "q1", "p2", "r1"}, Lossy},
		{lossy, []string{"r1", "p2", "q2", "r2"}, []string{"r2", "q2", "p2", "r1"}, Works},
	}
	for i, c := range cases {
		e := Expectation{Forward: hops(c.fwd...), Return: hops(c.ret...)}
		c.f.applyNftFaults(tcp, &e)
		if e.Verdict != c.want {
			t.Errorf("case %d: %v (%s), want %v", i, e.Verdict, e.Reason, c.want)
		}
	}
	icmp := tcp
	icmp.Proto, icmp.SrcPort, icmp.DstPort = 1, 7, 0
	e := Expectation{Forward: hops("r1", "p1", "q2", "r2"), Return: hops("r2", "q2", "p1", "r1")}
	f.applyNftFaults(icmp, &e)
	if e.Verdict != Works {
		t.Errorf("drop-synack fails icmp: %s", e.Reason)
	}
}

func tuple4(sport, dport uint16) hash.FiveTuple {
	return hash.FiveTuple{Src: client4.Addr(), Dst: server4.Addr(), Proto: hash.ProtoTCP, SrcPort: sport, DstPort: dport}
}
