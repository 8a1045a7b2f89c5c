package lab

import (
	"fmt"
	"net/netip"
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
}

func newTopology(s Spec) *topology {
	t := &topology{tier: map[string]int{}}
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

// internalLink addresses a link inside 198.19.0.0/16 and 2001:db8:ff00::/40.
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

// routes is the list of `ip` batch lines that install node n's routes.
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
		if len(nbs) == 1 && (nbs[0] == "c" || nbs[0] == "s") {
			return // connected
		}
		v6 := dst.Addr().Is6()
		var b strings.Builder
		fmt.Fprintf(&b, "route add %s", dst)
		for _, nb := range nbs {
			gw := t.addrOf(nb, n, v6).Addr()
			if len(nbs) == 1 {
				fmt.Fprintf(&b, " via %s dev %s", gw, IfName(nb))
			} else {
				fmt.Fprintf(&b, " nexthop via %s dev %s", gw, IfName(nb))
			}
		}
		lines = append(lines, b.String())
	}
	add(ServerPrefix4, +1)
	add(ServerPrefix6, +1)
	add(ClientPrefix4, -1)
	add(ClientPrefix6, -1)
	return lines
}

// nodeOf maps an address of the fabric to the node that owns it.
func (t *topology) nodeOf(a netip.Addr) string {
	a = a.Unmap()
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
