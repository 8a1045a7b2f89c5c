package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

func TestICMPPathSpec(t *testing.T) {
	if got := (Spec{}).WithDefaults().ICMPPath; got != ICMPPathFlow {
		t.Errorf("default ICMP path %q", got)
	}
	if got := (Spec{ICMPPath: ICMPPathFixed}).WithDefaults().ICMPPath; got != ICMPPathFixed {
		t.Errorf("WithDefaults changed ICMP path to %q", got)
	}
	for _, p := range []string{"", ICMPPathFixed, ICMPPathFlow} {
		if err := (Spec{Name: "a", Width: 2, ICMPPath: p, ICMPSource: ICMPFromRouterID}).Validate(); err != nil {
			t.Errorf("ICMP path %q: %v", p, err)
		}
	}
	for _, p := range []string{"Fixed", "flow ", "ecmp", "hash"} {
		if err := (Spec{Name: "a", Width: 2, ICMPPath: p, ICMPSource: ICMPFromRouterID}).Validate(); !errors.Is(err, ErrBadSpec) {
			t.Errorf("ICMP path %q: error %v", p, err)
		}
	}
	b, err := json.Marshal(Spec{Name: "a", Width: 2}.WithDefaults())
	if err != nil || !strings.Contains(string(b), `"icmp_path":"flow"`) || !strings.Contains(string(b), `"icmp_source":"outgoing"`) {
		t.Errorf("JSON %s, %v", b, err)
	}
}

// TestICMPPathLines checks the policy rules, the fixed next hop's table
// and its blackhole, per mode.
func TestICMPPathLines(t *testing.T) {
	spec := Spec{Name: "b", Width: 2, Width2: 3, Seed: 7, Faults: mustFaults(t, "blackhole-ret@q2", "blackhole-ret@r1"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}
	f := newFabric(spec)
	topo := f.topology()
	has := func(what string, got []string, want ...string) {
		t.Helper()
		all := "\n" + strings.Join(got, "\n") + "\n"
		for _, w := range want {
			if !strings.Contains(all, "\n"+w+"\n") {
				t.Errorf("%s lacks %q:\n%s", what, w, strings.TrimSpace(all))
			}
		}
	}
	for _, r := range f.Routers {
		nh := f.ICMPNextHop(r)
		if nh == "" || !contains(topo.neighbours(r, -1), nh) {
			t.Fatalf("%s: ICMP next hop %q, not one of %v", r, nh, topo.neighbours(r, -1))
		}
		v4, v6 := topo.icmpRules(r)
		has(r+" rules", v4, "rule add iif lo ipproto icmp lookup 100 pref 100")
		has(r+" -6 rules", v6, "rule add iif lo ipproto ipv6-icmp lookup 100 pref 100")
		if len(v4) != 1 || len(v6) != 1 {
			t.Errorf("%s rules: %q %q", r, v4, v6)
		}
		id4, id6 := f.RouterID(r, false), f.RouterID(r, true)
		if nh == "c" {
			has(r+" routes", topo.routes(r),
				"route add 198.18.1.0/24 dev to-c table 100 scope link src "+id4.String(),
				"route add 2001:db8:1::/64 dev to-c table 100 metric 1024 src "+id6.String())
		} else {
			has(r+" routes", topo.routes(r),
				fmt.Sprintf("route add 198.18.1.0/24 via %s dev to-%s table 100 src %s", f.Addr(nh, r, false), nh, id4),
				fmt.Sprintf("route add 2001:db8:1::/64 via %s dev to-%s table 100 metric 1024 src %s", f.Addr(nh, r, true), nh, id6))
		}
		n100 := 0
		for _, l := range topo.routes(r) {
			if strings.Contains(l, "table") {
				n100++
			}
		}
		if n100 != 2 {
			t.Errorf("%s: %d routes in a table, want 2", r, n100)
		}
	}
	// Single return next hops; and the next hops spread (a per-router
	// choice, not one parity for all).
	for r, want := range map[string]string{"r1": "c", "p1": "r1", "p2": "r1"} {
		if got := f.ICMPNextHop(r); got != want {
			t.Errorf("ICMPNextHop(%s) = %q, want %s", r, got, want)
		}
	}
	if f.ICMPNextHop("c") != "" || f.ICMPNextHop("s") != "" || f.ICMPNextHop("q4") != "" {
		t.Error("ICMPNextHop names a next hop for a non-router")
	}
	spread := map[string]int{}
	for seed := uint32(0); seed < 64; seed++ {
		g := newFabric(Spec{Name: "b", Width: 2, Width2: 3, Seed: seed, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
		spread["r2:"+g.ICMPNextHop("r2")]++
		spread[g.ICMPNextHop("q1")+"/"+g.ICMPNextHop("q2")]++
	}
	for _, k := range []string{"r2:q1", "r2:q2", "r2:q3", "p1/p1", "p1/p2", "p2/p1", "p2/p2"} {
		if spread[k] == 0 {
			t.Errorf("ICMP next hops over 64 seeds never give %s: %v", k, spread)
		}
	}
	// Example fixed choice, so a change of the choice is noticed.
	if got := newFabric(Spec{Name: "b", Width: 2, Width2: 2, Seed: 5, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}).ICMPNextHop("q2"); got != "p1" {
		t.Errorf("seed 5: q2's ICMP next hop %s, want p1", got)
	}

	// blackhole-ret blackholes the fixed table too.
	has("q2 blackholes", f.blackholeLines("q2"),
		"route replace blackhole 198.18.1.0/24", "route replace blackhole 2001:db8:1::/64 metric 256",
		"route replace blackhole 198.18.1.0/24 table 100", "route replace blackhole 2001:db8:1::/64 table 100 metric 1024")
	has("r1 blackholes", f.blackholeLines("r1"), "route replace blackhole 198.18.1.0/24 table 100")
	if l := f.blackholeLines("q1"); len(l) != 0 {
		t.Errorf("q1 blackholes: %q", l)
	}

	// Inbound source: the same table, without preferred sources.
	in := newFabric(Spec{Name: "b", Width: 2, Width2: 3, Seed: 7, ICMPSource: ICMPFromInbound, ICMPPath: ICMPPathFixed})
	has("inbound r2 routes", in.topology().routes("r2"),
		fmt.Sprintf("route add 198.18.1.0/24 via %s dev to-%s table 100", in.Addr(in.ICMPNextHop("r2"), "r2", false), in.ICMPNextHop("r2")))
	has("inbound r1 routes", in.topology().routes("r1"),
		"route add 198.18.1.0/24 dev to-c table 100 scope link", "route add 2001:db8:1::/64 dev to-c table 100 metric 1024")

	// Flow mode: no rules, no table, no extra blackholes.
	flow := spec
	flow.ICMPPath = ICMPPathFlow
	fl := newFabric(flow)
	for _, r := range fl.Routers {
		if v4, v6 := fl.topology().icmpRules(r); len(v4)+len(v6) > 0 {
			t.Errorf("flow mode: %s rules %q %q", r, v4, v6)
		}
		for _, l := range append(fl.topology().routes(r), fl.blackholeLines(r)...) {
			if strings.Contains(l, "table") {
				t.Errorf("flow mode: %s line %q", r, l)
			}
		}
		if nh := fl.ICMPNextHop(r); nh != "" {
			t.Errorf("flow mode: ICMPNextHop(%s) = %q", r, nh)
		}
	}
	for _, c := range []*Fabric{f, fl} {
		if v4, v6 := c.topology().icmpRules("c"); len(v4)+len(v6) > 0 {
			t.Errorf("client rules %q %q", v4, v6)
		}
		if strings.Contains(strings.Join(c.topology().routes("s"), "\n"), "table") {
			t.Errorf("server routes %q", c.topology().routes("s"))
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// brokenHop tells whether ICMP toward the client dies on the hop from
// router r to neighbour nh: at a return blackhole at r (which has its own
// ICMP too, in either mode) or at nh, or on a dead link between them (a
// dead link drops forwarded packets and the routers' own alike).
func brokenHop(f *Fabric, r, nh string) bool {
	for _, ft := range f.Spec.Faults {
		switch {
		case ft.Kind == BlackholeRet && (ft.Node == r || ft.Node == nh):
			return true
		case ft.Kind == LinkDrop && (ft.Node == r && ft.Peer == nh || ft.Node == nh && ft.Peer == r):
			return true
		}
	}
	return false
}

// ownICMPArrives tells whether ICMP that router r sends toward the client
// via neighbour nh reaches it, when that is known without knowing how the
// routers after nh forward it: never if the hop r-nh is broken; always if
// no fault lies between nh and the client (nh is in a tier at or nearer
// the client than any return blackhole, and than any dead link's far end).
func ownICMPArrives(f *Fabric, r, nh string) (arrives, known bool) {
	if brokenHop(f, r, nh) {
		return false, true
	}
	tier := f.topology().tier
	for _, ft := range f.Spec.Faults {
		switch {
		case ft.Kind == BlackholeRet && tier[nh] > tier[ft.Node]:
			return false, false
		case ft.Kind == LinkDrop && tier[nh] > min(tier[ft.Node], tier[ft.Peer]):
			return false, false
		}
	}
	return true, true
}

// icmpWalk4 follows the IPv4 ICMP that router r sends to the client in
// the fixed path mode: its fixed next hop, then, router by router, where
// `ip route get` says each forwards a packet from r's router ID (hashing
// its own header), as the oracle walks flows. The walk ends at "c" if it
// gets there.
func icmpWalk4(t *testing.T, f *Fabric, r string) []string {
	t.Helper()
	path := []string{r}
	prev, cur := r, f.ICMPNextHop(r)
	for i := 0; cur != "c" && i < 8; i++ {
		path = append(path, cur)
		out, _, err := run(context.Background(), "", "ip", "-n", f.Namespace(cur), "route", "get",
			f.Client4.String(), "from", f.RouterID(r, false).String(), "iif", IfName(prev), "ipproto", "icmp")
		if err != nil {
			return path // a blackhole
		}
		_, dev, ok := strings.Cut(out, " dev ")
		if !ok {
			t.Fatalf("%s: route get: %q", cur, out)
		}
		prev, cur = cur, strings.TrimPrefix(strings.Fields(dev)[0], "to-")
	}
	return append(path, cur)
}

// TestICMPPath traces 2x2 fabrics, TTL 1..4 over 24 source ports, in both
// families: with a return blackhole in each ICMP path mode, and with a
// dead link in the fixed mode. Fixed: each router answers all the flows
// that reach it at that TTL or none, as its one next hop (and whatever
// forwards its errors on) decides: for IPv4 exactly as the route walk of
// its errors predicts. Flow (Linux): the kernel sends a router's error
// for a flow where that flow's return traffic goes, so routers answer
// some flows and not others, exactly those whose own return leaves them
// through a working member.
func TestICMPPath(t *testing.T) {
	needNetns(t)
	cases := []struct {
		name, fault, path string
	}{
		{"ip1", "blackhole-ret@q1", ICMPPathFixed},
		{"ip2", "blackhole-ret@p1", ICMPPathFixed},
		{"ip3", "blackhole-ret@q1", ICMPPathFlow},
		{"ip4", "blackhole-ret@p1", ICMPPathFlow},
		// q2 forwards r2's errors to p2 (so they die): forwarded
		// ICMP is not steered, and a dead link still drops it.
		{"ip5", "link-drop@p2-q2", ICMPPathFixed},
	}
	for _, c := range cases {
		t.Run(c.path+"/"+c.fault, func(t *testing.T) {
			t.Parallel()
			testICMPPath(t, c.name, c.fault, c.path)
		})
	}
}

func testICMPPath(t *testing.T, name, fault, path string) {
	// Seed 5: r2 sends fixed-path ICMP via q2, q1 via p2, q2 via p1.
	f := upForTest(t, Spec{Name: name, Width: 2, Width2: 2, Seed: 5, Ports: []uint16{443},
		Faults: mustFaults(t, fault), ICMPPath: path, ICMPSource: ICMPFromRouterID})
	fixed := path == ICMPPathFixed
	if fixed {
		for r, want := range map[string]string{"r2": "q2", "q1": "p2", "q2": "p1"} {
			if got := f.ICMPNextHop(r); got != want {
				t.Fatalf("seed 5: ICMP next hop of %s is %s, want %s", r, got, want)
			}
		}
		if fault == "blackhole-ret@q1" {
			checkICMPPathState(t, f)
		}
	}
	// IPv4, fixed mode: the route walk of each router's errors.
	walk := map[string][]string{}
	if fixed {
		for _, r := range f.Routers {
			walk[r] = icmpWalk4(t, f, r)
		}
		t.Logf("IPv4 ICMP paths: %v", walk)
	}
	ports := portRange(36000, 24)
	const dport = 443
	hops := len(f.topology().tiers) - 2
	correlated := 0
	for _, v6 := range []bool{false, true} {
		src, dst := f.Client4, f.Server4
		if v6 {
			src, dst = f.Client6, f.Server6
		}
		// TTL 1..hops draw time exceeded; TTL hops+1 reaches the
		// server, so that its SYN-ACKs record the return paths.
		start := time.Now()
		got := traceSYNs(t, f, dst, ports, dport, hops+1, 1, 400*time.Millisecond)
		took := time.Since(start)
		obs, err := f.observe(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		fwd, ret := map[uint16][]Hop{}, map[uint16][]Hop{}
		for _, p := range ports {
			fwd[p], ret[p] = f.observedPaths(obs, hash.FiveTuple{Src: src, Dst: dst, Proto: hash.ProtoTCP, SrcPort: p, DstPort: dport})
		}
		var summary []string
		for ttl := 1; ttl <= hops; ttl++ {
			crossed, answered := map[string]int{}, map[string]int{}
			for _, p := range ports {
				if len(fwd[p]) < ttl {
					continue // died before (dead link)
				}
				r := fwd[p][ttl-1].Node
				crossed[r]++
				a, ok := got[traceKey{p, ttl, 0}]
				switch {
				case ok && a.from != f.RouterID(r, v6):
					t.Errorf("%s port %d ttl %d: answer from %s (%s), want %s's router ID", dst, p, ttl, a.from, f.NodeOf(a.from), r)
					continue
				case ok:
					answered[r]++
				}
				// Where the router sends its error for this flow: its
				// fixed next hop, or (flow mode) where the flow's own
				// return leaves it, if that return came through it.
				want, known := false, false
				switch {
				case fixed && !v6:
					w := walk[r]
					want, known = w[len(w)-1] == "c", true
					for i := 0; i+1 < len(w); i++ {
						if brokenHop(f, w[i], w[i+1]) {
							want = false
						}
					}
				case fixed:
					want, known = ownICMPArrives(f, r, f.ICMPNextHop(r))
				default:
					for i, h := range ret[p] {
						switch {
						case h.Node != r:
						case i+1 < len(ret[p]):
							want, known = ownICMPArrives(f, r, ret[p][i+1].Node)
						case r == "r1":
							want, known = ownICMPArrives(f, r, "c")
						}
					}
				}
				if known && want != ok {
					t.Errorf("%s %s port %d ttl %d: %s answered %v, want %v (ICMP next hop %q, IPv4 ICMP path %v, return %v)",
						path, dst, p, ttl, r, ok, want, f.ICMPNextHop(r), walk[r], hopNodes(ret[p]))
				}
			}
			for _, r := range f.topology().tiers[ttl] {
				n, a := crossed[r], answered[r]
				summary = append(summary, fmt.Sprintf("%s=%d/%d", r, a, n))
				if a > 0 && a < n {
					correlated++
					if fixed {
						t.Errorf("%s: %s answered %d of the %d flows that reached it at ttl %d: want all or none",
							dst, r, a, n, ttl)
					}
				}
			}
		}
		t.Logf("%s %s path, %s: answered/reached %s (%d probes in %v)",
			dst, path, fault, strings.Join(summary, " "), len(ports)*(hops+1), took.Round(time.Millisecond))
	}
	if !fixed && correlated == 0 {
		t.Errorf("flow mode: no router answered some flows and not others")
	}
}

// checkICMPPathState: the rules and table are there; Status shows the
// mode; the state file records it, and one without it loads as flow.
func checkICMPPathState(t *testing.T, f *Fabric) {
	t.Helper()
	ctx := context.Background()
	for _, fam := range []string{"-4", "-6"} {
		out, _, err := run(ctx, "", "ip", fam, "-n", f.Namespace("r2"), "rule", "show", "pref", "100")
		if err != nil || !strings.Contains(out, "iif lo ipproto") || !strings.Contains(out, "lookup 100") {
			t.Errorf("r2 %s rules: %v\n%s", fam, err, out)
		}
		out, _, err = run(ctx, "", "ip", fam, "-n", f.Namespace("q1"), "route", "show", "table", "100")
		if err != nil || !strings.HasPrefix(out, "blackhole") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("q1 %s table 100 (blackhole-ret@q1): %v\n%s", fam, err, out)
		}
	}
	// r2's output lookups: ICMP takes table 100 (its fixed next hop q2),
	// TCP the main table.
	for _, c := range []struct {
		dst, proto string
		fixed      bool
	}{
		{f.Client4.String(), "icmp", true}, {f.Client6.String(), "ipv6-icmp", true},
		{f.Client4.String(), "tcp", false}, {f.Client6.String(), "tcp", false},
	} {
		out, _, err := run(ctx, "", "ip", "-n", f.Namespace("r2"), "route", "get", c.dst, "ipproto", c.proto)
		if got := err == nil && strings.Contains(out, " table 100") && strings.Contains(out, " dev to-q2 "); got != c.fixed {
			t.Errorf("r2: route get %s ipproto %s: %v, want table 100 %v:\n%s", c.dst, c.proto, err, c.fixed, out)
		}
	}
	out, _, err := run(ctx, "", "ip", "-n", f.Namespace("r2"), "route", "show", "table", "100")
	if want := fmt.Sprintf("via %s dev to-q2", f.Addr("q2", "r2", false)); err != nil || !strings.Contains(out, want) || !strings.Contains(out, "src 198.18.255.99") {
		t.Errorf("r2 table 100: %v, want %q:\n%s", err, want, out)
	}
	st, err := f.Status(ctx)
	if err != nil || !strings.Contains(st, "fixed path") || !strings.Contains(st, "icmp via q2") {
		t.Errorf("Status: %v\n%s", err, st)
	}
	g, err := Load(f.Spec.Name)
	if err != nil || g.Spec.ICMPPath != ICMPPathFixed {
		t.Fatalf("Load: %v, ICMP path %q", err, g.Spec.ICMPPath)
	}
	// A state file from before the option: flow, as those labs were built.
	b, err := os.ReadFile(StatePath(f.Spec.Name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	spec, _ := doc["Spec"].(map[string]any)
	if spec["icmp_path"] != ICMPPathFixed {
		t.Errorf("state file: icmp_path %v", spec["icmp_path"])
	}
	delete(spec, "icmp_path")
	old, _ := json.Marshal(doc)
	if err := os.WriteFile(StatePath(f.Spec.Name), old, 0o644); err != nil {
		t.Fatal(err)
	}
	g, err = Load(f.Spec.Name)
	if err != nil || g.Spec.ICMPPath != ICMPPathFlow {
		t.Errorf("Load of an old state file: %v, ICMP path %q, want flow", err, g.Spec.ICMPPath)
	}
	if err := f.Save(); err != nil {
		t.Fatal(err)
	}
}
