package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

func TestRouterIDs(t *testing.T) {
	f := newFabric(Spec{Name: "r", Width: 16, Width2: 16, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	want := map[string]string{"r1": "1", "p1": "11", "p16": "26", "q1": "41", "q3": "43", "q16": "56", "r2": "99"}
	for n, k := range want {
		if got := f.RouterID(n, false); got != netip.MustParseAddr("198.18.255."+k) {
			t.Errorf("RouterID(%s, v4) = %s, want 198.18.255.%s", n, got, k)
		}
		if got := f.RouterID(n, true); got != netip.MustParseAddr("2001:db8:ffff::"+k) {
			t.Errorf("RouterID(%s, v6) = %s, want 2001:db8:ffff::%s", n, got, k)
		}
	}
	seen := map[netip.Addr]string{}
	for _, r := range f.Routers {
		for _, v6 := range []bool{false, true} {
			a := f.RouterID(r, v6)
			if !a.IsValid() {
				t.Errorf("%s has no router ID", r)
				continue
			}
			if o, dup := seen[a]; dup {
				t.Errorf("%s and %s share router ID %s", r, o, a)
			}
			seen[a] = r
			if got := f.NodeOf(a); got != r {
				t.Errorf("NodeOf(%s) = %q, want %s", a, got, r)
			}
			if got := f.NodeOf(netip.AddrFrom16(a.As16())); !v6 && got != r {
				t.Errorf("NodeOf(mapped %s) = %q, want %s", a, got, r)
			}
			if f.topology().nodeOf(a) == "" || f.Addr(r, "c", v6).IsValid() && f.NodeOf(f.Addr(r, "c", v6)) != r {
				t.Errorf("%s: link addresses no longer map", r)
			}
		}
	}
	small := newFabric(Spec{Name: "s", Width: 2, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	for _, n := range []string{"c", "s", "q1", "p3", "x", ""} {
		if a := small.RouterID(n, false); a.IsValid() {
			t.Errorf("RouterID(%q) = %s on a 2-wide one-tier fabric", n, a)
		}
	}
	for _, a := range []string{"198.18.255.41", "198.18.255.13", "198.18.255.0", "2001:db8:ffff::2"} {
		if n := small.NodeOf(netip.MustParseAddr(a)); n != "" {
			t.Errorf("NodeOf(%s) = %q on a 2-wide one-tier fabric", a, n)
		}
	}
	if n := small.NodeOf(netip.Addr{}); n != "" {
		t.Errorf("NodeOf(invalid) = %q", n)
	}
	if routerNumber("p17") != 0 || routerNumber("p01") != 0 || routerNumber("q0") != 0 || routerNumber("s") != 0 {
		t.Error("routerNumber accepts bad names")
	}
}

func TestICMPSourceSpec(t *testing.T) {
	if got := (Spec{}).WithDefaults().ICMPSource; got != ICMPFromOutgoing {
		t.Errorf("default ICMP source %q", got)
	}
	if got := (Spec{ICMPSource: ICMPFromInbound}).WithDefaults().ICMPSource; got != ICMPFromInbound {
		t.Errorf("WithDefaults changed ICMP source to %q", got)
	}
	for _, src := range []string{"", ICMPFromRouterID, ICMPFromInbound, ICMPFromOutgoing} {
		if err := (Spec{Name: "a", Width: 2, ICMPSource: src, ICMPPath: ICMPPathFixed}).Validate(); err != nil {
			t.Errorf("ICMP source %q: %v", src, err)
		}
	}
	for _, src := range []string{"loopback", "Router-ID", " inbound"} {
		err := (Spec{Name: "a", Width: 2, ICMPSource: src, ICMPPath: ICMPPathFixed}).Validate()
		if !errors.Is(err, ErrBadSpec) {
			t.Errorf("ICMP source %q: error %v", src, err)
		}
	}

	// Router-ID mode: every route of a router prefers the router ID; the
	// end links' addresses get no kernel prefix route but one with it.
	rid := newFabric(Spec{Name: "b", Width: 2, Width2: 3, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}).topology()
	check := func(what string, got []string, want ...string) {
		t.Helper()
		all := strings.Join(got, "\n")
		for _, w := range want {
			if !strings.Contains("\n"+all+"\n", "\n"+w+"\n") {
				t.Errorf("%s lacks %q:\n%s", what, w, all)
			}
		}
	}
	check("p2 routes", rid.routes("p2"),
		"route add 198.18.2.0/24 src 198.18.255.12 nexthop via 198.19.102.2 dev to-q1 nexthop via 198.19.102.18 dev to-q2 nexthop via 198.19.102.34 dev to-q3",
		"route add 198.18.1.0/24 via 198.19.2.1 dev to-r1 src 198.18.255.12",
		"route add 2001:db8:1::/64 via 2001:db8:ff00:2::1 dev to-r1 src 2001:db8:ffff::12")
	check("r1 routes", rid.routes("r1"),
		"route add 198.18.1.0/24 dev to-c proto kernel scope link src 198.18.255.1",
		"route add 2001:db8:1::/64 dev to-c proto kernel metric 256 src 2001:db8:ffff::1")
	check("r2 routes", rid.routes("r2"),
		"route add 198.18.1.0/24 src 198.18.255.99 nexthop via 198.19.201.1 dev to-q1 nexthop via 198.19.202.1 dev to-q2 nexthop via 198.19.203.1 dev to-q3",
		"route add 198.18.2.0/24 dev to-s proto kernel scope link src 198.18.255.99")
	check("r1 addresses", rid.addrLines("r1"),
		"addr add 198.18.255.1/32 dev lo", "addr add 2001:db8:ffff::1/128 dev lo nodad",
		"addr add 198.18.1.254/24 dev to-c noprefixroute", "addr add 2001:db8:1::fe/64 dev to-c nodad noprefixroute",
		"addr add 198.19.1.1/24 dev to-p1")
	check("q3 addresses", rid.addrLines("q3"), "addr add 198.18.255.43/32 dev lo", "addr add 198.19.203.1/24 dev to-r2")
	if c := strings.Join(rid.addrLines("c"), "\n"); strings.Contains(c, "dev lo") || strings.Contains(c, "noprefixroute") {
		t.Errorf("client addresses:\n%s", c)
	}

	// Inbound mode: routes as they always were.
	in := newFabric(Spec{Name: "b", Width: 2, Width2: 3, ICMPSource: ICMPFromInbound, ICMPPath: ICMPPathFixed})
	for _, r := range in.Routers {
		for _, l := range in.topology().routes(r) {
			if strings.Contains(l, " src ") || strings.Contains(l, "proto kernel") {
				t.Errorf("inbound mode: %s route %q", r, l)
			}
		}
		if a := strings.Join(in.topology().addrLines(r), "\n"); strings.Contains(a, "noprefixroute") {
			t.Errorf("inbound mode: %s addresses\n%s", r, a)
		}
	}
	sys := func(f *Fabric, n string) string {
		kv, _ := f.sysctls(n)
		for _, e := range kv {
			if e[0] == "net.ipv4.icmp_errors_use_inbound_ifaddr" {
				return e[1]
			}
		}
		return "unset"
	}
	if a, b := sys(newFabric(Spec{Name: "b", Width: 2, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}), "p1"), sys(in, "p1"); a != "0" || b != "1" {
		t.Errorf("icmp_errors_use_inbound_ifaddr: router-id %s, inbound %s", a, b)
	}
}

// traceKey names one TTL-limited probe: source port, TTL and round.
type traceKey struct {
	port       uint16
	ttl, round int
}

// icmpReply is an ICMP error a probe drew: who sent it, and its type.
type icmpReply struct {
	from netip.Addr
	typ  byte
}

// traceSYNs sends from the client namespace, through raw sockets, one TCP
// SYN to dst:dport per source port, TTL 1..maxTTL and round, and collects
// the ICMP errors that quote them (the TTL and round ride in the sequence
// number), for up to wait after the last one went out.
func traceSYNs(t *testing.T, f *Fabric, dst netip.Addr, ports []uint16, dport uint16, maxTTL, rounds int, wait time.Duration) map[traceKey]icmpReply {
	t.Helper()
	v6 := dst.Is6()
	src, icmpNet, tcpNet := f.Client4, "ip4:icmp", "ip4:tcp"
	if v6 {
		src, icmpNet, tcpNet = f.Client6, "ip6:ipv6-icmp", "ip6:tcp"
	}
	var rx, tx net.PacketConn
	err := InNamespace(f.ClientNS(), func() error {
		var err error
		if rx, err = net.ListenPacket(icmpNet, src.String()); err != nil {
			return err
		}
		tx, err = net.ListenPacket(tcpNet, src.String())
		return err
	})
	for _, c := range []net.PacketConn{rx, tx} {
		if c != nil {
			defer c.Close()
		}
	}
	if err != nil {
		t.Fatalf("raw sockets in %s: %v", f.ClientNS(), err)
	}
	rc, err := tx.(*net.IPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	to := &net.IPAddr{IP: dst.AsSlice()}
	var buf []byte
	for round := 0; round < rounds; round++ {
		for ttl := 1; ttl <= maxTTL; ttl++ {
			var serr error
			if err := rc.Control(func(fd uintptr) {
				if v6 {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, ttl)
				}
			}); err != nil || serr != nil {
				t.Fatalf("set TTL %d: %v %v", ttl, err, serr)
			}
			for _, p := range ports {
				syn := packet.SYN{
					Tuple: hash.FiveTuple{Src: src, Dst: dst, Proto: hash.ProtoTCP, SrcPort: p, DstPort: dport},
					Seq:   0x45530000 | uint32(round)<<8 | uint32(ttl),
				}
				if buf, err = packet.AppendTCPSYN(buf[:0], syn); err != nil {
					t.Fatal(err)
				}
				if _, err := tx.WriteTo(buf, to); err != nil {
					t.Fatalf("send SYN %v ttl %d: %v", syn.Tuple, ttl, err)
				}
			}
		}
	}
	got := map[traceKey]icmpReply{}
	want := len(ports) * maxTTL * rounds
	deadline := time.Now().Add(wait)
	b := make([]byte, 1500)
	for len(got) < want {
		rx.SetReadDeadline(deadline)
		n, from, err := rx.ReadFrom(b)
		if err != nil {
			break // deadline
		}
		typ, qdst, sport, qdport, seq, ok := parseICMPError(b[:n], v6)
		if !ok || qdst != dst || qdport != dport || seq>>16 != 0x4553 {
			continue
		}
		a, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		k := traceKey{port: sport, ttl: int(seq & 0xff), round: int(seq>>8) & 0xff}
		if _, dup := got[k]; dup {
			t.Errorf("two ICMP errors for %+v", k)
		}
		got[k] = icmpReply{from: a.Unmap(), typ: typ}
	}
	return got
}

// parseICMPError reads an ICMP or ICMPv6 error (without the outer IP
// header) that quotes a TCP segment.
func parseICMPError(b []byte, v6 bool) (typ byte, qdst netip.Addr, sport, dport uint16, seq uint32, ok bool) {
	if len(b) < 8 {
		return
	}
	typ, q := b[0], b[8:]
	var l4 []byte
	if v6 {
		if typ >= 128 || len(q) < 40+8 || q[0]>>4 != 6 || q[6] != unix.IPPROTO_TCP {
			return
		}
		qdst, l4 = netip.AddrFrom16([16]byte(q[24:40])), q[40:]
	} else {
		if typ != 3 && typ != 11 || len(q) < 20 || q[0]>>4 != 4 {
			return
		}
		ihl := int(q[0]&0x0f) * 4
		if ihl < 20 || len(q) < ihl+8 || q[9] != unix.IPPROTO_TCP {
			return
		}
		qdst, l4 = netip.AddrFrom4([4]byte(q[16:20])), q[ihl:]
	}
	sport = binary.BigEndian.Uint16(l4[0:2])
	dport = binary.BigEndian.Uint16(l4[2:4])
	seq = binary.BigEndian.Uint32(l4[4:8])
	return typ, qdst, sport, dport, seq, true
}

// wantAnswer is who should answer a probe of a flow on path fwd (from r1)
// whose TTL runs out at hop ttl, in f's ICMP source mode: nobody past a
// router that drops the flow or at a silent router.
func wantAnswer(f *Fabric, fwd []Hop, ttl int, v6 bool) (node string, addr netip.Addr) {
	for i := 0; i < ttl-1; i++ {
		if i >= len(fwd) || fwd[i].Out == "" {
			return "", netip.Addr{} // died before
		}
	}
	if ttl > len(fwd) {
		return "", netip.Addr{}
	}
	h := fwd[ttl-1]
	if h.Out == "" || f.hasFault(h.Node, Silent) {
		return "", netip.Addr{} // blackhole drops before the TTL check
	}
	if f.Spec.ICMPSource == ICMPFromInbound || f.Spec.ICMPSource == ICMPFromOutgoing {
		return h.Node, f.Addr(h.Node, strings.TrimPrefix(h.In, "to-"), v6)
	}
	return h.Node, f.RouterID(h.Node, v6)
}

func portRange(first uint16, n int) []uint16 {
	ps := make([]uint16, n)
	for i := range ps {
		ps[i] = first + uint16(i)
	}
	return ps
}

// checkTrace traces ports in both families and compares who answers with
// the forward paths: for IPv4 the oracle's (route walk), for IPv6 the
// paths the routers recorded for the probes themselves. It returns the
// IPv4 and IPv6 paths by port.
func checkTrace(t *testing.T, f *Fabric, ports []uint16, dport uint16) (fwd4, fwd6 map[uint16][]Hop) {
	t.Helper()
	hops := len(f.topology().tiers) - 2 // routers on a path
	// IPv6 in inbound mode, and both families in outgoing mode: the
	// kernel's own choice, a link address of the right router; counted by
	// whether it is the inbound link's.
	v6Kind := map[string]int{}
	fwd4, fwd6 = map[uint16][]Hop{}, map[uint16][]Hop{}
	var ts4 []hash.FiveTuple
	for _, p := range ports {
		ts4 = append(ts4, hash.FiveTuple{Src: f.Client4, Dst: f.Server4, Proto: hash.ProtoTCP, SrcPort: p, DstPort: dport})
	}
	es, err := f.ExpectAll(context.Background(), ts4)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range ports {
		fwd4[p] = es[i].Forward
	}
	for _, v6 := range []bool{false, true} {
		dst := f.Server4
		if v6 {
			dst = f.Server6
		}
		start := time.Now()
		got := traceSYNs(t, f, dst, ports, dport, hops, 2, 400*time.Millisecond)
		took := time.Since(start)
		paths := fwd4
		if v6 {
			obs, err := f.observe(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ports {
				fwd6[p], _ = f.observedPaths(obs, hash.FiveTuple{Src: f.Client6, Dst: f.Server6, Proto: hash.ProtoTCP, SrcPort: p, DstPort: dport})
			}
			paths = fwd6
		}
		answered := map[string]int{}
		for _, p := range ports {
			for ttl := 1; ttl <= hops; ttl++ {
				wantNode, wantAddr := wantAnswer(f, paths[p], ttl, v6)
				for round := 0; round < 2; round++ {
					r, ok := got[traceKey{p, ttl, round}]
					switch {
					case wantNode == "" && ok:
						t.Errorf("%s port %d ttl %d: answer from %s (%s), want none (path %v)",
							dst, p, ttl, r.from, f.NodeOf(r.from), hopNodes(paths[p]))
					case wantNode == "":
					case !ok:
						t.Errorf("%s port %d ttl %d round %d: no answer, want %s from %s (path %v)",
							dst, p, ttl, round, wantNode, wantAddr, hopNodes(paths[p]))
					case looseSource(f, v6) && f.NodeOf(r.from) == wantNode && r.from != f.RouterID(wantNode, v6):
						if r.from == wantAddr {
							v6Kind["inbound link"]++
						} else {
							v6Kind["other link "+r.from.String()]++
						}
						answered[fmt.Sprintf("ttl%d=%s", ttl, f.NodeOf(r.from))]++
					case r.from != wantAddr:
						t.Errorf("%s port %d ttl %d round %d: answer from %s (%s), want %s from %s (path %v)",
							dst, p, ttl, round, r.from, f.NodeOf(r.from), wantNode, wantAddr, hopNodes(paths[p]))
					case (v6 && r.typ != 3) || (!v6 && r.typ != 11):
						t.Errorf("%s port %d ttl %d: ICMP type %d, want time exceeded", dst, p, ttl, r.typ)
					default:
						answered[fmt.Sprintf("ttl%d=%s", ttl, f.NodeOf(r.from))]++
						if f.topology().tier[f.NodeOf(r.from)] != ttl {
							t.Errorf("%s port %d: ttl %d answered by %s, of tier %d", dst, p, ttl, f.NodeOf(r.from), f.topology().tier[f.NodeOf(r.from)])
						}
					}
					// The same port, the same answer, every time.
					if r0, ok0 := got[traceKey{p, ttl, 0}]; round > 0 && ok && ok0 && r0 != r {
						t.Errorf("%s port %d ttl %d: answers differ across rounds: %s, %s", dst, p, ttl, r0.from, r.from)
					}
				}
			}
		}
		keys := make([]string, 0, len(answered))
		for k, n := range answered {
			keys = append(keys, fmt.Sprintf("%s:%d", k, n))
		}
		sort.Strings(keys)
		t.Logf("%s: %d answers to %d probes in %v: %s", dst, len(got), len(ports)*hops*2, took.Round(time.Millisecond), strings.Join(keys, " "))
		if looseSource(f, v6) {
			t.Logf("%s: errors came from: %v", dst, v6Kind)
		}
	}
	return fwd4, fwd6
}

// looseSource: errors come from whatever link address the kernel picks (the
// one they leave by): IPv6 in inbound mode, both families in outgoing mode.
func looseSource(f *Fabric, v6 bool) bool {
	return f.Spec.ICMPSource == ICMPFromOutgoing || (v6 && f.Spec.ICMPSource == ICMPFromInbound)
}

// nodesAt counts which routers the paths put at hop i.
func nodesAt(paths map[uint16][]Hop, i int) map[string]int {
	m := map[string]int{}
	for _, hs := range paths {
		m[nodeAt(hs, i)]++
	}
	return m
}

// TestICMPFromRouterIDTwoTier traces a 2x3 fabric: every router answers
// from its router ID, the one on the flow's path at that TTL, in both
// families; a silent router does not answer; an address without a route
// draws an unreachable from r1's router ID.
func TestICMPFromRouterIDTwoTier(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "ic1", Width: 2, Width2: 3, Seed: 11, Ports: []uint16{443},
		Faults: mustFaults(t, "silent@q2"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	if f.Spec.ICMPSource != ICMPFromRouterID {
		t.Fatalf("default ICMP source %q", f.Spec.ICMPSource)
	}
	g, err := Load("ic1")
	if err != nil || g.Spec.ICMPSource != ICMPFromRouterID {
		t.Fatalf("Load: %v, ICMP source %q", err, g.Spec.ICMPSource)
	}
	if st, err := g.Status(context.Background()); err != nil || !strings.Contains(st, "router-id") || !strings.Contains(st, "198.18.255.43") {
		t.Errorf("Status: %v\n%s", err, st)
	}
	out, _, err := run(context.Background(), "", "ip", "-n", f.Namespace("q3"), "addr", "show", "dev", "lo")
	if err != nil || !strings.Contains(out, "198.18.255.43/32") || !strings.Contains(out, "2001:db8:ffff::43/128") {
		t.Errorf("q3 loopback: %v\n%s", err, out)
	}

	// No route: r1 answers with an unreachable, from its router ID. (This
	// goes first: IPv4 no-route errors share a per-sender token bucket
	// with the ICMP rate limit, which icmp_ratelimit=0 leaves empty after
	// the time-exceeded below, so for a second r1 would say nothing.)
	for _, dst := range []netip.Addr{netip.MustParseAddr("198.18.3.1"), netip.MustParseAddr("2001:db8:3::1")} {
		got := traceSYNs(t, f, dst, []uint16{33100}, 443, 1, 1, 400*time.Millisecond)
		r, ok := got[traceKey{33100, 1, 0}]
		if !ok || r.from != f.RouterID("r1", dst.Is6()) {
			t.Errorf("unroutable %s: got %+v (answered %v), want unreachable from %s", dst, r, ok, f.RouterID("r1", dst.Is6()))
		} else {
			t.Logf("unroutable %s: ICMP type %d from %s (%s)", dst, r.typ, r.from, f.NodeOf(r.from))
		}
	}

	fwd4, fwd6 := checkTrace(t, f, portRange(33000, 12), 443)
	for fam, paths := range map[string]map[uint16][]Hop{"IPv4": fwd4, "IPv6": fwd6} {
		ps, qs := nodesAt(paths, 1), nodesAt(paths, 2)
		t.Logf("%s paths: p %v, q %v", fam, ps, qs)
		if len(ps) < 2 || len(qs) < 2 || qs["q2"] == 0 {
			t.Errorf("%s: ports do not spread (or miss silent q2): p %v, q %v", fam, ps, qs)
		}
	}
}

// TestICMPFromRouterIDOneTier: the same on one tier, where a blackholed
// router stays silent for the flows it drops, as does a silent one.
func TestICMPFromRouterIDOneTier(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "ic2", Width: 3, Seed: 2, Ports: []uint16{80},
		Faults: mustFaults(t, "silent@p1", "blackhole-fwd@p3"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	fwd4, fwd6 := checkTrace(t, f, portRange(34000, 10), 80)
	for fam, paths := range map[string]map[uint16][]Hop{"IPv4": fwd4, "IPv6": fwd6} {
		ps := nodesAt(paths, 1)
		t.Logf("%s paths: p %v", fam, ps)
		if ps["p1"] == 0 || ps["p2"] == 0 || ps["p3"] == 0 {
			t.Errorf("%s: ports miss a member: %v", fam, ps)
		}
	}
}

// TestICMPFromInbound: with the old mode, routers answer from the address
// of the link the probe came in on (IPv4; IPv6: a link address of the
// right router), and NodeOf maps it.
func TestICMPFromInbound(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "ic3", Width: 2, Width2: 2, Seed: 4, Ports: []uint16{80}, ICMPSource: ICMPFromInbound, ICMPPath: ICMPPathFixed})
	g, err := Load("ic3")
	if err != nil || g.Spec.ICMPSource != ICMPFromInbound {
		t.Fatalf("Load: %v, ICMP source %q", err, g.Spec.ICMPSource)
	}
	if st, err := g.Status(context.Background()); err != nil || !strings.Contains(st, "inbound") {
		t.Errorf("Status: %v\n%s", err, st)
	}
	// IPv4: exactly the inbound link's address; IPv6: a link address of
	// the router on the path.
	fwd4, _ := checkTrace(t, f, portRange(35000, 8), 80)
	if qs := nodesAt(fwd4, 2); len(qs) < 2 {
		t.Errorf("ports do not spread over q: %v", qs)
	}
}

// TestICMPFromOutgoing: plain Linux routers (no route src, errors follow
// the flow) answer from a link address of the right router, never their
// router ID, and NodeOf maps it.
func TestICMPFromOutgoing(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "ic4", Width: 2, Width2: 3, Seed: 6, Ports: []uint16{80}, ICMPSource: ICMPFromOutgoing, ICMPPath: ICMPPathFlow})
	g, err := Load("ic4")
	if err != nil || g.Spec.ICMPSource != ICMPFromOutgoing {
		t.Fatalf("Load: %v, ICMP source %q", err, g.Spec.ICMPSource)
	}
	if st, err := g.Status(context.Background()); err != nil || !strings.Contains(st, "outgoing") {
		t.Errorf("Status: %v\n%s", err, st)
	}
	for _, r := range f.Routers {
		for _, l := range f.topology().routes(r) {
			if strings.Contains(l, " src ") {
				t.Errorf("outgoing mode: %s route %q has a preferred source", r, l)
			}
		}
	}
	checkTrace(t, f, portRange(36000, 8), 80)
}
