// Package lab builds a real Linux ECMP fabric out of network namespaces, for
// integration tests and demos:
//
//	c -- r1 ==(N-way ECMP)== p1..pN [==(M-way ECMP, full mesh)== q1..qM] == r2 -- s
//
// Every router hashes the TCP five-tuple (custom multipath hash policy with
// addresses, protocol and ports, and a fixed per-router seed), in both
// directions, for IPv4 and IPv6. Faults (blackholes, SYN-ACK drops, loss,
// dead links, routers that never send time-exceeded) are injected with
// blackhole routes and nftables rules. The Fabric's oracle (Expect, ExpectAll)
// tells for a given five-tuple which path the kernel picks and whether a probe
// on it should succeed, so that probers can be checked against the kernel.
//
// By default the routers behave as plain Linux (FRR, SONiC) routers do,
// the hard case for a traceroute: a router's ICMP error leaves on the ECMP
// member that the offending flow's return traffic takes (Spec.ICMPPath
// flow), from the address of the interface it leaves by (Spec.ICMPSource
// outgoing), so one router shows a different address per flow and a
// return fault also eats the errors of the flows it breaks. Every router
// also has a router ID on its loopback (198.18.255.K and 2001:db8:ffff::K,
// see Fabric.RouterID): with ICMPSource router-id it sends its errors from
// it, one address per router whatever the flow; with ICMPPath fixed it
// sends them along one fixed next hop whatever the flow, as many hardware
// routers do; with IPID shared every router numbers the IPv4 packets it
// originates from one counter, as many hardware routers do too, where
// Linux keeps a counter per destination and source; with IPOptions drop
// every router drops IPv4 packets that carry options, as much gear does.
//
// Everything lives in namespaces named "esl-<name>-<node>" and uses only
// 198.18.0.0/15 and 2001:db8::/32. All of it needs root.
package lab

import (
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrBadSpec is wrapped by every validation and parse error, so callers can
// tell bad input (exit code 2) from a failure to build the fabric.
var ErrBadSpec = errors.New("bad lab spec")

// Limits on the fabric's size.
const (
	MaxWidth  = 16
	MaxWidth2 = 16
)

// DefaultPorts are the server ports used when a Spec names none.
var DefaultPorts = []uint16{80, 3306}

// Spec describes a fabric to build.
type Spec struct {
	Name   string   `json:"name"`             // [a-z0-9]{1,8}
	Width  int      `json:"width"`            // N: first ECMP tier, 1..16
	Width2 int      `json:"width2,omitempty"` // M: second tier, 0..16 (0 = single tier)
	Seed   uint32   `json:"seed"`             // mixed with each router's name into its hash seed
	Ports  []uint16 `json:"ports,omitempty"`  // server ports; default DefaultPorts
	Faults []Fault  `json:"faults,omitempty"`
	// ICMPSource says which address a router's ICMP errors (time
	// exceeded, unreachable) come from: ICMPFromOutgoing (the default,
	// as plain Linux does), ICMPFromRouterID or ICMPFromInbound.
	ICMPSource string `json:"icmp_source"`
	// ICMPPath says which way a router's own ICMP errors toward the
	// client leave it: ICMPPathFlow (the default, as Linux does) or
	// ICMPPathFixed.
	ICMPPath string `json:"icmp_path"`
	// IPID says where the IPv4 identification of a router's own packets
	// comes from: IPIDKernel (the default, Linux's) or IPIDShared.
	IPID string `json:"ipid,omitempty"`
	// HashSeed says whether the routers' multipath hash seeds differ
	// (HashSeedPerRouter, the default) or are one (HashSeedShared).
	HashSeed string `json:"hash_seed,omitempty"`
	// Routes says what the routers route: the client and server prefixes
	// only (RoutesHosts, the default) or every link and router ID as well
	// (RoutesAll).
	Routes string `json:"routes,omitempty"`
	// IPOptions says what the routers do with IPv4 packets that carry
	// options: handle them as Linux does (IPOptionsHonour, the default:
	// a timestamp option is stamped) or drop them (IPOptionsDrop).
	IPOptions string `json:"ip_options,omitempty"`
	// ICMPRateLimitMS, when set, rate-limits the routers' ICMP errors as
	// Linux does (DefaultICMPRateLimitMS, lab up's default: a burst of 6
	// per destination, then one a second); 0 lets every error out, so
	// that a test's silences are its faults' and configuration's only.
	ICMPRateLimitMS int `json:"icmp_ratelimit_ms,omitempty"`
	// Responder, when set, is the port an `ecmpscan responder` listens on
	// at the server's addresses (lab up --responder), run by the serve
	// daemon with a token in the state directory.
	Responder uint16 `json:"responder,omitempty"`
}

// The ICMP source modes of Spec.ICMPSource.
const (
	// ICMPFromRouterID: every router sources its ICMP and ICMPv6 errors
	// from its router ID (a loopback address, see Fabric.RouterID), as
	// routers of real fabrics do, so one router shows one address
	// whatever the flow. The routes toward the end hosts carry the router
	// ID as preferred source, and the kernel takes the ICMP error's source
	// from the route back to the prober.
	ICMPFromRouterID = "router-id"
	// ICMPFromInbound: IPv4 errors come from the address of the link the
	// packet came in on (icmp_errors_use_inbound_ifaddr=1); IPv6 errors
	// from the kernel's default choice, which is also the inbound link's
	// address. The same router then shows a different address per link.
	ICMPFromInbound = "inbound"
	// ICMPFromOutgoing: the kernel's own default, as on plain Linux, FRR
	// and SONiC routers: no preferred source on the routes and
	// icmp_errors_use_inbound_ifaddr=0, so an error comes from the address
	// of the interface it leaves by. Where errors follow the offending
	// flow (ICMPPathFlow) one router shows a different address per flow.
	ICMPFromOutgoing = "outgoing"
)

// DefaultICMPSource is the kernel's own behaviour (plain Linux, FRR,
// SONiC): the hard case, and so the lab's default.
const DefaultICMPSource = ICMPFromOutgoing

// ICMPSources lists the ICMP source modes, default first.
var ICMPSources = []string{ICMPFromOutgoing, ICMPFromRouterID, ICMPFromInbound}

// The ICMP path modes of Spec.ICMPPath.
const (
	// ICMPPathFixed: every router sends its own ICMP and ICMPv6 errors
	// toward the client along one fixed next hop of its return ECMP group
	// (see Fabric.ICMPNextHop), whatever the flow that drew them, as many
	// hardware routers do: their ICMP is routed as a packet of its own,
	// not as part of the offending flow. A policy rule sends locally
	// generated ICMP to a table holding that one next hop. Routers
	// further on forward the error like any other packet, hashing its own
	// (outer) header, so one router's errors take one path to the client.
	ICMPPathFixed = "fixed"
	// ICMPPathFlow: Linux's own behaviour. The kernel hashes a locally
	// generated ICMP error with the offending packet's flow keys (made
	// direction-symmetric), so a router sends the error for a flow out of
	// the same ECMP member as that flow's return traffic: where the
	// return path of a flow is broken, so often is the path of the time
	// exceeded messages about it.
	ICMPPathFlow = "flow"
)

// DefaultICMPPath is Linux's own behaviour, the lab's default.
const DefaultICMPPath = ICMPPathFlow

// ICMPPaths lists the ICMP path modes, default first.
var ICMPPaths = []string{ICMPPathFlow, ICMPPathFixed}

// The IP ID modes of Spec.IPID.
const (
	// IPIDKernel: Linux's own identification, from a counter per
	// destination and source address (randomly stepped), so one
	// router's addresses never share one.
	IPIDKernel = "kernel"
	// IPIDShared: one counter per router, stepped by one for every IPv4
	// packet it originates, whatever its address, as many hardware
	// routers keep (an nftables rule rewrites the identification).
	// Each router's counter starts at a value drawn from its name and
	// the seed, as routers booted at different times do.
	IPIDShared = "shared"
)

// DefaultIPID is Linux's own behaviour, the lab's default.
const DefaultIPID = IPIDKernel

// The hash seed modes of Spec.HashSeed.
const (
	// HashSeedPerRouter: every router its own fib_multipath_hash_seed
	// (RouterSeed), as fabrics configured against polarization have: a
	// flow's way back is drawn apart from its way out.
	HashSeedPerRouter = "per-router"
	// HashSeedShared: one seed on every router, as gear left at one
	// vendor default has. Linux's multipath hash is symmetric (it orders
	// the addresses and ports before hashing), so with one seed a flow
	// comes back over the members it went out by, and the tiers
	// polarize: they choose in lockstep, from one hash of the flow.
	HashSeedShared = "shared"
)

// DefaultHashSeed is per router, the lab's default.
const DefaultHashSeed = HashSeedPerRouter

// HashSeedModes lists the hash seed modes, default first.
var HashSeedModes = []string{HashSeedPerRouter, HashSeedShared}

// The routing modes of Spec.Routes.
const (
	// RoutesHosts: the routers route the client and server prefixes
	// only, as fabrics that carry their hosts' prefixes alone (BGP
	// without its connected routes) do: the addresses of links and
	// router IDs that answer a trace are reached by none of our probes.
	RoutesHosts = "hosts"
	// RoutesAll: every link's subnet and every router ID is routed too,
	// along the shortest paths (ECMP where several), as an IGP or a BGP
	// that carries connected routes does: an echo request reaches the
	// addresses a trace saw.
	RoutesAll = "all"
)

// DefaultRoutes routes the hosts' prefixes only, the lab's default.
const DefaultRoutes = RoutesHosts

// RoutesModes lists the routing modes, default first.
var RoutesModes = []string{RoutesHosts, RoutesAll}

// The IPv4 options modes of Spec.IPOptions.
const (
	// IPOptionsHonour: Linux's own handling. A router forwards a packet
	// with options and stamps a timestamp option's entries that name its
	// own addresses (RFC 791), which trace's alias test reads.
	IPOptionsHonour = "honour"
	// IPOptionsDrop: every router drops every IPv4 packet with options
	// it receives, to itself or to forward, as much gear and many
	// filters do (options take the slow path): the alias test then
	// hears nothing back and must prove nothing.
	IPOptionsDrop = "drop"
)

// DefaultIPOptions is Linux's own handling, the lab's default.
const DefaultIPOptions = IPOptionsHonour

// IPOptionsModes lists the IPv4 options modes, default first.
var IPOptionsModes = []string{IPOptionsHonour, IPOptionsDrop}

// DefaultICMPRateLimitMS is Linux's icmp_ratelimit (and IPv6's
// icmp.ratelimit), the default of lab up: a burst of 6 errors per
// destination, then one a second.
const DefaultICMPRateLimitMS = 1000

// IPIDModes lists the IP ID modes, default first.
var IPIDModes = []string{IPIDKernel, IPIDShared}

// fixedICMPPath reports whether routers send their own ICMP along one
// fixed next hop ("" means the default, which does not).
func (s Spec) fixedICMPPath() bool { return s.ICMPPath == ICMPPathFixed }

// routerIDSource reports whether routers source ICMP errors from their
// router ID ("" means the default, which does not).
func (s Spec) routerIDSource() bool { return s.ICMPSource == ICMPFromRouterID }

// inboundSource reports whether IPv4 errors come from the inbound link.
func (s Spec) inboundSource() bool { return s.ICMPSource == ICMPFromInbound }

// FaultKind names a kind of fault.
type FaultKind string

// The fault kinds.
const (
	// BlackholeFwd replaces the router's route to the server prefixes
	// with a blackhole route (so the kernel oracle sees it).
	BlackholeFwd FaultKind = "blackhole-fwd"
	// BlackholeRet does the same for the client prefixes.
	BlackholeRet FaultKind = "blackhole-ret"
	// DropSynAck drops forwarded TCP segments with SYN and ACK set.
	DropSynAck FaultKind = "drop-synack"
	// Loss drops Percent % of all forwarded packets at random.
	Loss FaultKind = "loss"
	// LinkDrop kills the link between Node and Peer in both directions:
	// forwarded packets and the routers' own (ICMP errors) alike. ARP and
	// IPv6 neighbour discovery still work and routing keeps using the
	// link, as with a link that fails without bringing its carrier down.
	LinkDrop FaultKind = "link-drop"
	// LinkOneway kills the link from Node to Peer only: what Node sends
	// into it is lost, what Peer sends gets through (a fibre or optic dead
	// in one direction). link-oneway@q2-p1 loses the answers that q2 hashes
	// onto p1, and nothing on the way out.
	LinkOneway FaultKind = "link-oneway"
	// Silent drops the router's own ICMP/ICMPv6 time-exceeded messages.
	Silent FaultKind = "silent"
)

// FaultKinds lists every kind, in documentation order.
var FaultKinds = []FaultKind{BlackholeFwd, BlackholeRet, DropSynAck, Loss, LinkDrop, LinkOneway, Silent}

// isLink reports whether a fault kind is on a link (it names a peer).
func (k FaultKind) isLink() bool { return k == LinkDrop || k == LinkOneway }

// DropsInto reports whether the fault loses what node sends into its link
// toward peer.
func (f Fault) DropsInto(node, peer string) bool {
	switch f.Kind {
	case LinkDrop:
		return (f.Node == node && f.Peer == peer) || (f.Peer == node && f.Node == peer)
	case LinkOneway:
		return f.Node == node && f.Peer == peer
	}
	return false
}

// Fault is one injected failure on a router.
type Fault struct {
	Kind    FaultKind `json:"kind"`
	Node    string    `json:"node"`
	Peer    string    `json:"peer,omitempty"`    // link-drop: the other end of the link
	Percent int       `json:"percent,omitempty"` // loss: 1..100
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]{1,8}$`)
	nodeRE = regexp.MustCompile(`^(c|s|r1|r2|[pq][1-9][0-9]?)$`)
)

// CheckName reports whether name is a valid lab name ([a-z0-9]{1,8});
// the error wraps ErrBadSpec.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name %q must be 1-8 characters of [a-z0-9]", ErrBadSpec, name)
	}
	return nil
}

// ParseFault parses the String form of a fault: "blackhole-fwd@p2",
// "blackhole-ret@q1", "drop-synack@p1", "loss=20@p3", "link-drop@p1-q2",
// "silent@q1". It checks syntax only; Spec.Validate checks the nodes exist.
func ParseFault(s string) (Fault, error) {
	bad := func(format string, a ...any) (Fault, error) {
		return Fault{}, fmt.Errorf("%w: fault %q: %s", ErrBadSpec, s, fmt.Sprintf(format, a...))
	}
	kindPart, where, ok := strings.Cut(strings.TrimSpace(s), "@")
	if !ok || kindPart == "" || where == "" {
		return bad("want KIND@NODE (kinds: %s)", kindList())
	}
	var f Fault
	kind, arg, hasArg := strings.Cut(kindPart, "=")
	f.Kind = FaultKind(kind)
	switch f.Kind {
	case Loss:
		if !hasArg {
			return bad("want loss=PERCENT@NODE")
		}
		p, err := strconv.Atoi(arg)
		if err != nil || p < 1 || p > 100 {
			return bad("loss percent must be 1..100")
		}
		f.Percent = p
	case BlackholeFwd, BlackholeRet, DropSynAck, LinkDrop, LinkOneway, Silent:
		if hasArg {
			return bad("%s takes no =VALUE", kind)
		}
	default:
		return bad("unknown kind %q (kinds: %s)", kind, kindList())
	}
	if f.Kind.isLink() {
		a, b, ok := strings.Cut(where, "-")
		if !ok || a == "" || b == "" {
			return bad("want %s@NODE-NODE", f.Kind)
		}
		f.Node, f.Peer = a, b
	} else {
		f.Node = where
	}
	for _, n := range []string{f.Node, f.Peer} {
		if n != "" && !nodeRE.MatchString(n) {
			return bad("bad node name %q (want r1, r2, pN or qN)", n)
		}
	}
	return f, nil
}

func kindList() string {
	var b strings.Builder
	for i, k := range FaultKinds {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}

// String is the inverse of ParseFault.
func (f Fault) String() string {
	kind := string(f.Kind)
	if f.Kind == Loss {
		kind += "=" + strconv.Itoa(f.Percent)
	}
	where := f.Node
	if f.Kind.isLink() {
		where += "-" + f.Peer
	}
	return kind + "@" + where
}

// WithDefaults returns the spec with empty fields filled in.
func (s Spec) WithDefaults() Spec {
	if len(s.Ports) == 0 {
		s.Ports = append([]uint16(nil), DefaultPorts...)
	}
	if s.ICMPSource == "" {
		s.ICMPSource = DefaultICMPSource
	}
	if s.ICMPPath == "" {
		s.ICMPPath = DefaultICMPPath
	}
	if s.IPID == "" {
		s.IPID = DefaultIPID
	}
	if s.HashSeed == "" {
		s.HashSeed = DefaultHashSeed
	}
	if s.Routes == "" {
		s.Routes = DefaultRoutes
	}
	if s.IPOptions == "" {
		s.IPOptions = DefaultIPOptions
	}
	return s
}

// Validate checks the spec, including that each fault names a router of
// this fabric (and, for link-drop, two adjacent routers), and the ICMP
// source and path modes ("" means the default). Errors wrap ErrBadSpec.
func (s Spec) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrBadSpec, fmt.Sprintf(format, a...))
	}
	if err := CheckName(s.Name); err != nil {
		return err
	}
	if s.Width < 1 || s.Width > MaxWidth {
		return bad("width %d out of range 1..%d", s.Width, MaxWidth)
	}
	if s.Width2 < 0 || s.Width2 > MaxWidth2 {
		return bad("width2 %d out of range 0..%d", s.Width2, MaxWidth2)
	}
	seen := map[uint16]bool{}
	for _, p := range s.Ports {
		if p == 0 {
			return bad("port 0 is not a server port")
		}
		if seen[p] {
			return bad("port %d given twice", p)
		}
		seen[p] = true
	}
	if len(s.Ports) > 64 {
		return bad("at most 64 server ports")
	}
	if s.Responder != 0 && seen[s.Responder] {
		return bad("responder port %d is a server port", s.Responder)
	}
	for _, m := range []struct {
		what, v string
		modes   []string
		sep     string
	}{
		{"icmp source", s.ICMPSource, ICMPSources, ", "},
		{"icmp path", s.ICMPPath, ICMPPaths, " or "},
		{"ipid", s.IPID, IPIDModes, " or "},
		{"hash seed", s.HashSeed, HashSeedModes, " or "},
		{"routes", s.Routes, RoutesModes, " or "},
		{"ip options", s.IPOptions, IPOptionsModes, " or "},
	} {
		if m.v != "" && !slices.Contains(m.modes, m.v) {
			return bad("%s %q: want %s", m.what, m.v, strings.Join(m.modes, m.sep))
		}
	}
	if s.ICMPRateLimitMS < 0 || s.ICMPRateLimitMS > 60000 {
		return bad("icmp rate limit %d ms: want 0 (none) to 60000", s.ICMPRateLimitMS)
	}
	t := newTopology(s)
	faultSeen := map[string]bool{}
	for _, f := range s.Faults {
		if _, err := ParseFault(f.String()); err != nil {
			return err
		}
		for _, n := range []string{f.Node, f.Peer} {
			if n == "" {
				continue
			}
			if !t.isRouter(n) {
				return bad("fault %s: %q is not a router of this fabric (routers: %s)",
					f, n, strings.Join(t.routers(), ", "))
			}
		}
		if f.Kind.isLink() {
			if f.Node == f.Peer || t.link(f.Node, f.Peer) == nil {
				return bad("fault %s: %s and %s are not adjacent", f, f.Node, f.Peer)
			}
		} else if f.Peer != "" {
			return bad("fault %s: only link-drop and link-oneway take a peer", f)
		}
		if f.Kind == Loss && (f.Percent < 1 || f.Percent > 100) {
			return bad("fault %s: loss percent must be 1..100", f)
		}
		key := f.String()
		if faultSeen[key] {
			return bad("fault %s given twice", f)
		}
		faultSeen[key] = true
	}
	return nil
}

// RouterSeed is the fib_multipath_hash_seed of a router: fixed for a given
// spec seed, different per router (a seed shared by all routers makes the
// tiers polarize: every p would pick the same q for a given flow), never 0
// (0 asks the kernel for a random seed).
func RouterSeed(specSeed uint32, node string) uint32 {
	h := fnv.New32a()
	fmt.Fprintf(h, "ecmpscan-lab/%d/%s", specSeed, node)
	v := h.Sum32()
	if v == 0 {
		v = 1
	}
	return v
}
