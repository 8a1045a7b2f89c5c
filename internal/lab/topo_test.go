package lab

import (
	"slices"
	"strings"
	"testing"
)

// With every link routed (RoutesAll), a router reaches each link it is not
// on, and each other router's ID, over the neighbours on a shortest path:
// r1 reaches the q1-r2 link over both p's, p1 the r1-p2 link back over
// r1 alone, r2's ID over q1 and q2, and q2 the other q's ID over every
// neighbour; with the hosts' prefixes only, none of it.
func TestInternalRoutes(t *testing.T) {
	s := Spec{Name: "t", Width: 2, Width2: 2, Seed: 1, Routes: RoutesAll}.WithDefaults()
	top := newTopology(s)
	for _, tc := range []struct{ node, want string }{
		{"r1", "route add 198.19.201.0/24 nexthop via 198.19.1.2 dev to-p1 nexthop via 198.19.2.2 dev to-p2"},
		{"r1", "route add 198.19.101.0/28 via 198.19.1.2 dev to-p1"},
		{"p1", "route add 198.19.2.0/24 via 198.19.1.1 dev to-r1"},
		{"p1", "route add 198.18.255.99/32 nexthop via 198.19.101.2 dev to-q1 nexthop via 198.19.101.18 dev to-q2"},
		{"q2", "route add 2001:db8:ff00:1::/80 via 2001:db8:ff00:101:16::1 dev to-p1"},
		{"q2", "route add 198.18.255.41/32 nexthop via 198.19.101.17 dev to-p1 nexthop via 198.19.102.17 dev to-p2 nexthop via 198.19.202.2 dev to-r2"},
		{"r2", "route add 198.18.255.1/32 nexthop via 198.19.201.1 dev to-q1 nexthop via 198.19.202.1 dev to-q2"},
	} {
		if lines := top.routes(tc.node); !slices.Contains(lines, tc.want) {
			t.Errorf("%s lacks %q:\n%s", tc.node, tc.want, strings.Join(lines, "\n"))
		}
	}
	// Nothing to what a router is on, or to its own ID.
	for _, l := range top.routes("p1") {
		for _, own := range []string{"198.19.1.0/24", "198.19.101.0/28", "198.18.255.11/32"} {
			if strings.HasPrefix(l, "route add "+own+" ") {
				t.Errorf("p1 routes its own %s: %q", own, l)
			}
		}
	}
	all := top.routes("q1")
	s.Routes = RoutesHosts
	hosts := newTopology(s).routes("q1")
	for _, l := range hosts {
		if !slices.Contains(all, l) {
			t.Errorf("hosts only, q1 routes %q, which all routes lack", l)
		}
		for _, internal := range []string{"route add 198.19.", "route add 198.18.255.", "route add 2001:db8:ff"} {
			if strings.HasPrefix(l, internal) {
				t.Errorf("hosts only, yet q1 routes %q", l)
			}
		}
	}
	if len(hosts) != 4 {
		t.Errorf("hosts only: q1 has %d routes, want the 4 to the client and server prefixes:\n%s", len(hosts), strings.Join(hosts, "\n"))
	}
}
