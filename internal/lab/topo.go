package lab

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Fixed end-host addressing.
var (
	ClientPrefix4 = netip.MustParsePrefix("198.18.1.0/24")
	ServerPrefix4 = netip.MustParsePrefix("198.18.2.0/24")
	ClientPrefix6 = netip.MustParsePrefix("2001:db8:1::/64")
	ServerPrefix6 = netip.MustParsePrefix("2001:db8:2::/64")

	client4   = netip.MustParsePrefix("198.18.1.1/24")
	r1Client4 = netip.MustParsePrefix("198.18.1.254/24")
	client6   = netip.MustParsePrefix("2001:db8:1::1/64")
	r1Client6 = netip.MustParsePrefix("2001:db8:1::fe/64")
	server4   = netip.MustParsePrefix("198.18.2.2/24")
	r2Server4 = netip.MustParsePrefix("198.18.2.1/24")
	server6   = netip.MustParsePrefix("2001:db8:2::2/64")
	r2Server6 = netip.MustParsePrefix("2001:db8:2::1/64")
)

// Router IDs. Every router has one IPv4 and one IPv6 address on its
// loopback that name it: 198.18.255.K/32 and 2001:db8:ffff::K/128, with
// the same number K written in decimal digits in both:
//
//	r1 = 1, p_i = 10+i (p1 = 11 .. p16 = 26), q_j = 40+j (q1 = 41 .. q16 = 56), r2 = 99
//
// so 198.18.255.42 and 2001:db8:ffff::42 are q2. With the ICMP source mode
// ICMPFromRouterID routers send their ICMP errors from them.
const (
	routerIDBase4 = "198.18.255."
	routerIDBase6 = "2001:db8:ffff::"
)

// routerNumber is router n's number K in its router ID (0 if n is no
// router name).
func routerNumber(n string) int {
	switch n {
	case "r1":
		return 1
	case "r2":
		return 99
	}
	if len(n) < 2 || (n[0] != 'p' && n[0] != 'q') || n[1] == '0' {
		return 0
	}
	i, err := strconv.Atoi(n[1:])
	switch {
	case err != nil:
		return 0
	case n[0] == 'p' && i >= 1 && i <= MaxWidth:
		return 10 + i
	case n[0] == 'q' && i >= 1 && i <= MaxWidth2:
		return 40 + i
	}
	return 0
}

// routerIDOf is the router ID of router n as a host prefix (invalid if n
// is not a router of this fabric).
func (t *topology) routerIDOf(n string, v6 bool) netip.Prefix {
	k := routerNumber(n)
	if k == 0 || !t.isRouter(n) {
		return netip.Prefix{}
	}
	if v6 {
		return netip.PrefixFrom(netip.MustParseAddr(routerIDBase6+strconv.Itoa(k)), 128)
	}
	return netip.PrefixFrom(netip.MustParseAddr(routerIDBase4+strconv.Itoa(k)), 32)
}

// Link is one veth pair. A is the end nearer the client. On A the interface
// is named "to-<B>", on B "to-<A>".
type Link struct {
	A, B   string
	A4, B4 netip.Prefix // address and prefix length of each end
	A6, B6 netip.Prefix
}

// IfA is the name of the interface on A; IfB the one on B.
func (l Link) IfA() string { return IfName(l.B) }

// IfB is the name of the interface on B.
func (l Link) IfB() string { return IfName(l.A) }

// IfName is the name of the interface leading to node peer.
func IfName(peer string) string { return "to-" + peer }

// topology is the pure (no system calls) plan of a fabric: tiers of nodes,
// links between consecutive tiers (full mesh), and addresses.
type topology struct {
	tiers [][]string // [[c] [r1] [p1..pN] ([q1..qM]) [r2] [s]]
	links []Link
	tier  map[string]int
	// ridSrc: routers source ICMP errors from their router ID (routes
	// toward the end hosts carry it as preferred source).
	ridSrc bool
	// icmpFixed: routers send their own ICMP toward the client along one
	// fixed next hop (icmpNextHop), chosen from their seed.
	icmpFixed bool
	// allRoutes: routers route every link and router ID (RoutesAll).
	allRoutes bool
	seed      uint32 // the spec's seed
}

func newTopology(s Spec) *topology {
	t := &topology{tier: map[string]int{}, ridSrc: s.routerIDSource(), icmpFixed: s.fixedICMPPath(),
		allRoutes: s.Routes == RoutesAll, seed: s.Seed}
	t.tiers = append(t.tiers, []string{"c"}, []string{"r1"})
	t.tiers = append(t.tiers, numbered("p", s.Width))
	if s.Width2 > 0 {
		t.tiers = append(t.tiers, numbered("q", s.Width2))
	}
	t.tiers = append(t.tiers, []string{"r2"}, []string{"s"})
	for i, tier := range t.tiers {
		for _, n := range tier {
			t.tier[n] = i
		}
	}
	// Client and server links.
	t.links = append(t.links, Link{A: "c", B: "r1", A4: client4, B4: r1Client4, A6: client6, B6: r1Client6})
	// r1 - p_i: 198.19.i.0/24, 2001:db8:ff00:i:0::/80.
	for i, p := range t.tiers[2] {
		t.links = append(t.links, internalLink("r1", p, i+1, 0, 24))
	}
	last := t.tiers[2]
	if s.Width2 > 0 {
		// p_i - q_j: 198.19.(100+i).(16(j-1))/28, 2001:db8:ff00:(100+i):(16(j-1))::/80.
		for i, p := range t.tiers[2] {
			for j, q := range t.tiers[3] {
				t.links = append(t.links, internalLink(p, q, 100+i+1, 16*j, 28))
			}
		}
		last = t.tiers[3]
	}
	// last tier - r2: 198.19.(200+x).0/24.
	for x, n := range last {
		t.links = append(t.links, internalLink(n, "r2", 200+x+1, 0, 24))
	}
	t.links = append(t.links, Link{A: "r2", B: "s", A4: r2Server4, B4: server4, A6: r2Server6, B6: server6})
	return t
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

// internalLink addresses a link inside 198.19.0.0/16 and 2001:db8:ff00::/48.
// The IPv6 groups repeat the IPv4 third octet and block base as decimal
// digits, so 198.19.102.17 pairs with 2001:db8:ff00:102:16::1.
func internalLink(a, b string, third, block, bits int) Link {
	v4 := func(host int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(third), byte(block + host)}), bits)
	}
	v6 := func(host int) netip.Prefix {
		return netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("2001:db8:ff00:%d:%d::%d", third, block, host)), 80)
	}
	return Link{A: a, B: b, A4: v4(1), B4: v4(2), A6: v6(1), B6: v6(2)}
}

func (t *topology) nodes() []string {
	var out []string
	for _, tier := range t.tiers {
		out = append(out, tier...)
	}
	return out
}

func (t *topology) routers() []string {
	var out []string
	for _, tier := range t.tiers[1 : len(t.tiers)-1] {
		out = append(out, tier...)
	}
	return out
}

func (t *topology) isRouter(n string) bool {
	i, ok := t.tier[n]
	return ok && i > 0 && i < len(t.tiers)-1
}

func (t *topology) link(a, b string) *Link {
	for i := range t.links {
		l := &t.links[i]
		if (l.A == a && l.B == b) || (l.A == b && l.B == a) {
			return l
		}
	}
	return nil
}

// neighbours returns the nodes one tier toward the server (dir > 0) or
// toward the client (dir < 0).
func (t *topology) neighbours(n string, dir int) []string {
	i, ok := t.tier[n]
	if !ok || i+dir < 0 || i+dir >= len(t.tiers) {
		return nil
	}
	return t.tiers[i+dir]
}

// addrOf returns node n's address on its link to peer.
func (t *topology) addrOf(n, peer string, v6 bool) netip.Prefix {
	l := t.link(n, peer)
	if l == nil {
		return netip.Prefix{}
	}
	switch {
	case l.A == n && !v6:
		return l.A4
	case l.A == n:
		return l.A6
	case !v6:
		return l.B4
	default:
		return l.B6
	}
}

// addrLines is the list of `ip` batch lines that bring up node n's
// loopback (with the router IDs on a router) and its links with their
// addresses. In router-ID mode the addresses on r1's link to the client
// and r2's link to the server get no prefix route: routes adds it, with
// the router ID as preferred source.
func (t *topology) addrLines(n string) []string {
	ls := []string{"link set lo up"}
	if t.isRouter(n) {
		ls = append(ls,
			fmt.Sprintf("addr add %s dev lo", t.routerIDOf(n, false)),
			fmt.Sprintf("addr add %s dev lo nodad", t.routerIDOf(n, true)))
	}
	for _, l := range t.links {
		if l.A != n && l.B != n {
			continue
		}
		peer := l.B
		if l.B == n {
			peer = l.A
		}
		flags := ""
		if t.ridSrc && t.isRouter(n) && (peer == "c" || peer == "s") {
			flags = " noprefixroute"
		}
		dev := IfName(peer)
		ls = append(ls,
			fmt.Sprintf("addr add %s dev %s%s", t.addrOf(n, peer, false), dev, flags),
			fmt.Sprintf("addr add %s dev %s nodad%s", t.addrOf(n, peer, true), dev, flags),
			fmt.Sprintf("link set %s up", dev))
	}
	return ls
}

// routes is the list of `ip` batch lines that install node n's routes.
// In router-ID mode every route of a router carries its router ID as
// preferred source ("src"): the kernel sources ICMP errors from the
// preferred source of the route back to the packet's sender (IPv4 with
// icmp_errors_use_inbound_ifaddr=0; IPv6 always when the route has one).
func (t *topology) routes(n string) []string {
	var lines []string
	switch n {
	case "c":
		lines = append(lines,
			"route add default via "+r1Client4.Addr().String(),
			"route add default via "+r1Client6.Addr().String())
		return lines
	case "s":
		lines = append(lines,
			"route add default via "+r2Server4.Addr().String(),
			"route add default via "+r2Server6.Addr().String())
		return lines
	}
	add := func(dst netip.Prefix, dir int) {
		nbs := t.neighbours(n, dir)
		v6 := dst.Addr().Is6()
		src := ""
		if t.ridSrc {
			src = " src " + t.routerIDOf(n, v6).Addr().String()
		}
		if len(nbs) == 1 && (nbs[0] == "c" || nbs[0] == "s") {
			// Connected. In router-ID mode the address has no prefix
			// route (addrLines); this one is the kernel's own but for
			// the source (same metric, so blackhole faults replace or
			// shadow it as they would the kernel's).
			switch {
			case !t.ridSrc:
			case v6:
				lines = append(lines, fmt.Sprintf("route add %s dev %s proto kernel metric 256%s", dst, IfName(nbs[0]), src))
			default:
				lines = append(lines, fmt.Sprintf("route add %s dev %s proto kernel scope link%s", dst, IfName(nbs[0]), src))
			}
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "route add %s", dst)
		if len(nbs) == 1 {
			fmt.Fprintf(&b, " via %s dev %s%s", t.addrOf(nbs[0], n, v6).Addr(), IfName(nbs[0]), src)
		} else {
			b.WriteString(src) // before the nexthops: one source for all of them
			for _, nb := range nbs {
				fmt.Fprintf(&b, " nexthop via %s dev %s", t.addrOf(nb, n, v6).Addr(), IfName(nb))
			}
		}
		lines = append(lines, b.String())
	}
	add(ServerPrefix4, +1)
	add(ServerPrefix6, +1)
	add(ClientPrefix4, -1)
	add(ClientPrefix6, -1)
	if t.icmpFixed {
		lines = append(lines, t.icmpRoutes(n)...)
	}
	if t.allRoutes {
		lines = append(lines, t.internalRoutes(n)...)
	}
	return lines
}

// internalRoutes routes, from router n, every link it is not on and every
// other router's ID, over the neighbours on a shortest path through the
// routers (several: ECMP), as an IGP would (RoutesAll).
func (t *topology) internalRoutes(n string) []string {
	var lines []string
	route := func(dst netip.Prefix, ends ...string) {
		d := t.routerDistances(ends...)
		var hops []string
		for _, nb := range t.routerNeighbours(n) {
			if d[nb] == d[n]-1 {
				hops = append(hops, nb)
			}
		}
		v6 := dst.Addr().Is6()
		var b strings.Builder
		fmt.Fprintf(&b, "route add %s", dst.Masked())
		for _, nb := range hops {
			if len(hops) > 1 {
				b.WriteString(" nexthop")
			}
			fmt.Fprintf(&b, " via %s dev %s", t.addrOf(nb, n, v6).Addr(), IfName(nb))
		}
		lines = append(lines, b.String())
	}
	for _, l := range t.links {
		if l.A != n && l.B != n && t.isRouter(l.A) && t.isRouter(l.B) {
			route(l.A4, l.A, l.B)
			route(l.A6, l.A, l.B)
		}
	}
	for _, r := range t.routers() {
		if r != n {
			route(t.routerIDOf(r, false), r)
			route(t.routerIDOf(r, true), r)
		}
	}
	return lines
}

// routerNeighbours are the routers one link from n.
func (t *topology) routerNeighbours(n string) []string {
	var out []string
	for _, dir := range []int{-1, +1} {
		for _, nb := range t.neighbours(n, dir) {
			if t.isRouter(nb) {
				out = append(out, nb)
			}
		}
	}
	return out
}

// routerDistances counts the links from each router to the nearest of
// ends, through routers only.
func (t *topology) routerDistances(ends ...string) map[string]int {
	d := map[string]int{}
	queue := slices.Clone(ends)
	for _, e := range ends {
		d[e] = 0
	}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, nb := range t.routerNeighbours(x) {
			if _, ok := d[nb]; !ok {
				d[nb] = d[x] + 1
				queue = append(queue, nb)
			}
		}
	}
	return d
}

// The fixed ICMP path (ICMPPathFixed): a policy rule sends every ICMP
// packet the router itself generates (iif lo: output route lookups; a
// forwarded packet comes in on a real interface) to icmpTable, which
// holds the client prefixes via one next hop. Lookups of other
// destinations find nothing there and fall through to the main table.
const (
	icmpTable    = 100
	icmpRulePref = 100
	// icmpMetric6 is the metric of the IPv6 routes in icmpTable, spelled
	// out so that blackhole-ret's route replace hits them.
	icmpMetric6 = 1024
)

// icmpNextHop is the neighbour toward the client that router n sends its
// own ICMP to in the fixed ICMP path mode: one member of its return ECMP
// group, picked by its hash seed ("" if n is no router).
func (t *topology) icmpNextHop(n string) string {
	if !t.isRouter(n) {
		return ""
	}
	nbs := t.neighbours(n, -1)
	if len(nbs) == 0 {
		return ""
	}
	// Not RouterSeed % len: FNV-1a mixes its last bytes poorly (the low
	// bits are the parity of the name's bytes, the high bits barely see
	// the last one), which would pair routers up (q1 and q2 always apart,
	// or always together). Mix it first, then take the high bits.
	return nbs[uint64(mix32(RouterSeed(t.seed, n)))*uint64(len(nbs))>>32]
}

// mix32 is MurmurHash3's 32-bit finalizer: every input bit affects every
// output bit.
func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// icmpRoutes is the list of `ip` batch lines that fill router n's
// icmpTable: the client prefixes via icmpNextHop, with the same preferred
// source as the main table's routes. icmpRules adds the rules.
func (t *topology) icmpRoutes(n string) []string {
	nh := t.icmpNextHop(n)
	if nh == "" {
		return nil
	}
	var lines []string
	for _, dst := range []netip.Prefix{ClientPrefix4, ClientPrefix6} {
		v6 := dst.Addr().Is6()
		var b strings.Builder
		fmt.Fprintf(&b, "route add %s", dst)
		if nh == "c" {
			fmt.Fprintf(&b, " dev %s", IfName(nh))
		} else {
			fmt.Fprintf(&b, " via %s dev %s", t.addrOf(nh, n, v6).Addr(), IfName(nh))
		}
		fmt.Fprintf(&b, " table %d", icmpTable)
		switch {
		case v6:
			fmt.Fprintf(&b, " metric %d", icmpMetric6)
		case nh == "c":
			b.WriteString(" scope link")
		}
		if t.ridSrc {
			fmt.Fprintf(&b, " src %s", t.routerIDOf(n, v6).Addr())
		}
		lines = append(lines, b.String())
	}
	return lines
}

// icmpRules returns the `ip` and `ip -6` batch lines of router n's policy
// rules for the fixed ICMP path (none in the flow mode).
func (t *topology) icmpRules(n string) (v4, v6 []string) {
	if !t.icmpFixed || !t.isRouter(n) {
		return nil, nil
	}
	rule := func(proto string) []string {
		return []string{fmt.Sprintf("rule add iif lo ipproto %s lookup %d pref %d", proto, icmpTable, icmpRulePref)}
	}
	return rule("icmp"), rule("ipv6-icmp")
}

// nodeOf maps an address of the fabric (a link address or a router ID)
// to the node that owns it.
func (t *topology) nodeOf(a netip.Addr) string {
	a = a.Unmap()
	if !a.IsValid() {
		return ""
	}
	for _, r := range t.routers() {
		if a == t.routerIDOf(r, a.Is6()).Addr() {
			return r
		}
	}
	for _, l := range t.links {
		switch a {
		case l.A4.Addr(), l.A6.Addr():
			return l.A
		case l.B4.Addr(), l.B6.Addr():
			return l.B
		}
	}
	return ""
}
