package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StateDir holds one state file per lab: lab-<name>.json.
const StateDir = "/run/ecmpscan"

// Fabric is a running lab. It is JSON-serializable: Up writes it to the
// state file, Load reads it back.
type Fabric struct {
	Spec                               Spec
	Client4, Server4, Client6, Server6 netip.Addr
	Nodes                              []string          // every node, client first, server last
	Routers                            []string          // r1, p*, q*, r2
	Links                              []Link            // every veth pair
	Seeds                              map[string]uint32 // fib_multipath_hash_seed per router
	ServerPID                          int               `json:",omitempty"` // lab serve daemon, if started
	ServerLog                          string            `json:",omitempty"`
	Created                            time.Time

	topo *topology
}

// newFabric computes the plan of a fabric without touching the system.
func newFabric(spec Spec) *Fabric {
	spec = spec.WithDefaults()
	t := newTopology(spec)
	f := &Fabric{
		Spec:    spec,
		Client4: client4.Addr(), Server4: server4.Addr(),
		Client6: client6.Addr(), Server6: server6.Addr(),
		Nodes:   t.nodes(),
		Routers: t.routers(),
		Links:   t.links,
		Seeds:   map[string]uint32{},
		topo:    t,
	}
	for _, r := range f.Routers {
		seedName := r
		if spec.HashSeed == HashSeedShared {
			seedName = HashSeedShared // one seed for every router
		}
		f.Seeds[r] = RouterSeed(spec.Seed, seedName)
	}
	return f
}

// Namespace is the network namespace of a node: "esl-<name>-<node>".
func (f *Fabric) Namespace(node string) string { return nsName(f.Spec.Name, node) }

func nsName(lab, node string) string { return "esl-" + lab + "-" + node }

// ClientNS is the client's namespace, where probers run.
func (f *Fabric) ClientNS() string { return f.Namespace("c") }

// ServerNS is the server's namespace.
func (f *Fabric) ServerNS() string { return f.Namespace("s") }

// NodeOf names the node that owns addr ("" if none): a link address or a
// router ID, e.g. to map the source of an ICMP time-exceeded back to a
// router. With the ICMP source mode ICMPFromRouterID routers
// send their errors from their router ID; with ICMPFromInbound from the
// address of the link the probe came in on.
func (f *Fabric) NodeOf(addr netip.Addr) string { return f.topology().nodeOf(addr) }

// RouterID is router node's router ID, the address on its loopback that it
// sources ICMP errors from in the ICMPFromRouterID mode: 198.18.255.K or
// 2001:db8:ffff::K, with K = 1 for r1, 10+i for p_i, 40+j for q_j and 99
// for r2 (the same decimal digits in both families). It is invalid if node
// is not a router of the fabric.
func (f *Fabric) RouterID(node string, v6 bool) netip.Addr {
	return f.topology().routerIDOf(node, v6).Addr()
}

// ICMPNextHop is the neighbour toward the client that router node sends
// its own ICMP errors (and any other ICMP it generates) to, whatever the
// flow, in the ICMP path mode ICMPPathFixed: one member of
// its return ECMP group, picked by its hash seed. It is "" in the mode
// ICMPPathFlow, where the kernel picks the member by the offending flow's
// hash, or if node is not a router of the fabric. Past that next hop the
// error is forwarded like any packet, by the hash of its own header.
func (f *Fabric) ICMPNextHop(node string) string {
	if !f.Spec.fixedICMPPath() {
		return ""
	}
	return f.topology().icmpNextHop(node)
}

// Addr is node's address on its link to peer (invalid if not adjacent).
func (f *Fabric) Addr(node, peer string, v6 bool) netip.Addr {
	return f.topology().addrOf(node, peer, v6).Addr()
}

func (f *Fabric) topology() *topology {
	if f.topo == nil {
		f.topo = newTopology(f.Spec)
	}
	return f.topo
}

// StatePath is the state file of the named lab.
func StatePath(name string) string { return filepath.Join(StateDir, "lab-"+name+".json") }

// TokenPath is where the named lab's responder token is kept.
func TokenPath(name string) string { return filepath.Join(StateDir, "lab-"+name+"-token") }

// ServeLogPath is where `lab serve` for the named lab logs.
func ServeLogPath(name string) string { return filepath.Join(StateDir, "lab-"+name+"-serve.log") }

// Save writes the state file.
func (f *Fabric) Save() error {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := StatePath(f.Spec.Name) + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, StatePath(f.Spec.Name))
}

// Load reads a lab's state file.
func Load(name string) (*Fabric, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(StatePath(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("lab %q is not up (no %s)", name, StatePath(name))
		}
		return nil, err
	}
	var f Fabric
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(name), err)
	}
	if f.Spec.Name != name {
		return nil, fmt.Errorf("%s: names lab %q", StatePath(name), f.Spec.Name)
	}
	if f.Spec.ICMPSource == "" {
		// Written before the option existed, when routers always sent
		// errors from the inbound link's address.
		f.Spec.ICMPSource = ICMPFromInbound
	}
	if f.Spec.ICMPPath == "" {
		// Written before the option existed, when routers' ICMP always
		// followed the offending flow.
		f.Spec.ICMPPath = ICMPPathFlow
	}
	return &f, nil
}

// List names the labs that have a state file or any esl-* namespace.
func List() ([]string, error) {
	set := map[string]bool{}
	matches, _ := filepath.Glob(filepath.Join(StateDir, "lab-*.json"))
	for _, m := range matches {
		n := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), "lab-"), ".json")
		if nameRE.MatchString(n) {
			set[n] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nss, err := netnsNames(ctx)
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		if n, ok := labOfNS(ns); ok {
			set[n] = true
		}
	}
	var out []string
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func labOfNS(ns string) (string, bool) {
	parts := strings.Split(ns, "-")
	if len(parts) != 3 || parts[0] != "esl" || !nameRE.MatchString(parts[1]) {
		return "", false
	}
	return parts[1], true
}

// Up builds the fabric: namespaces, sysctls, veths, addresses, ECMP routes;
// checks that the healthy fabric carries TCP over IPv4 and IPv6; then
// injects the faults and writes the state file. Leftovers of a lab of the
// same name are removed first. On any error, everything Up made is removed.
func Up(ctx context.Context, spec Spec) (_ *Fabric, err error) {
	spec = spec.WithDefaults()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := Cleanup(ctx, spec.Name); err != nil {
		return nil, fmt.Errorf("remove leftovers of lab %s: %w", spec.Name, err)
	}
	f := newFabric(spec)
	f.Created = time.Now().UTC().Truncate(time.Second)
	defer func() {
		if err != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if derr := f.Down(dctx); derr != nil {
				err = errors.Join(err, fmt.Errorf("tear down: %w", derr))
			}
		}
	}()
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, err
	}
	t := f.topology()

	// 1. Namespaces.
	var lines []string
	for _, n := range f.Nodes {
		lines = append(lines, "netns add "+f.Namespace(n))
	}
	if err := ipBatch(ctx, "", lines); err != nil {
		return nil, err
	}

	// 2. Sysctls, before any interface exists so "default" applies to all.
	if err := forEachNode(f.Nodes, func(n string) error {
		kv, opt := f.sysctls(n)
		return writeSysctls(f.Namespace(n), kv, opt)
	}); err != nil {
		return nil, err
	}

	// 3. Veth pairs, created directly inside their namespaces. Each end
	// gets an ifindex unique in the fabric: the kernel's link watcher
	// handles a carrier change at once only for a device whose peer index
	// differs from its own index; otherwise it batches the event for up to
	// a second, and the device drops what it sends until then. In fresh
	// namespaces both ends of a veth would often be index 2.
	lines = lines[:0]
	for k, l := range f.Links {
		lines = append(lines, fmt.Sprintf("link add %s index %d netns %s type veth peer name %s index %d netns %s",
			l.IfA(), 100+2*k, f.Namespace(l.A), l.IfB(), 101+2*k, f.Namespace(l.B)))
	}
	if err := ipBatch(ctx, "", lines); err != nil {
		return nil, err
	}

	// 4. Addresses and links up, then routes (gateways need up links).
	if err := forEachNode(f.Nodes, func(n string) error {
		return ipBatch(ctx, f.Namespace(n), t.addrLines(n))
	}); err != nil {
		return nil, err
	}
	if err := forEachNode(f.Nodes, func(n string) error {
		if err := ipBatch(ctx, f.Namespace(n), t.routes(n)); err != nil {
			return err
		}
		v4, v6 := t.icmpRules(n)
		if err := ipBatch(ctx, f.Namespace(n), v4); err != nil {
			return err
		}
		return ipBatch6(ctx, f.Namespace(n), v6)
	}); err != nil {
		return nil, err
	}

	// 5. Wait for every veth to be operationally up, then one bounded
	// end-to-end check of the healthy fabric.
	if err := f.waitLinksUp(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	if err := f.checkConnectivity(ctx); err != nil {
		return nil, err
	}

	// 6. Faults, and the nftables sets that record paths (observe.go).
	if err := f.applyFaults(ctx); err != nil {
		return nil, err
	}
	if err := f.Save(); err != nil {
		return nil, err
	}
	return f, nil
}

// forEachNode runs fn for every node concurrently and joins the errors.
func forEachNode(nodes []string, fn func(string) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(n)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sysctls returns the settings of node n, and which of them may be missing
// on older kernels.
func (f *Fabric) sysctls(n string) ([][2]string, map[string]bool) {
	kv := [][2]string{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_ra", "0"},
		{"net.ipv4.icmp_ratelimit", "0"},
		{"net.ipv6.icmp.ratelimit", "0"},
		{"net.ipv4.icmp_msgs_per_sec", "1000000"},
		{"net.ipv4.icmp_msgs_burst", "1000000"},
	}
	optional := map[string]bool{
		"net.ipv4.icmp_msgs_per_sec": true,
		"net.ipv4.icmp_msgs_burst":   true,
	}
	switch n {
	case "c":
	case "s":
		kv = append(kv,
			[2]string{"net.core.somaxconn", "65535"},
			[2]string{"net.ipv4.tcp_max_syn_backlog", "65535"})
	default:
		// ICMP errors: in router-ID mode from the preferred source of
		// the route back to the sender, the router ID (topology.routes);
		// in inbound mode from the address the probe came in on, so each
		// source names one router and one link.
		inbound := "0"
		if f.Spec.inboundSource() {
			inbound = "1"
		}
		kv = append(kv,
			[2]string{"net.ipv4.ip_forward", "1"},
			[2]string{"net.ipv6.conf.all.forwarding", "1"},
			[2]string{"net.ipv4.fib_multipath_hash_policy", "3"},
			[2]string{"net.ipv4.fib_multipath_hash_fields", "0x0037"},
			[2]string{"net.ipv6.fib_multipath_hash_policy", "3"},
			[2]string{"net.ipv6.fib_multipath_hash_fields", "0x0037"},
			[2]string{"net.ipv4.fib_multipath_hash_seed", strconv.FormatUint(uint64(f.Seeds[n]), 10)},
			[2]string{"net.ipv4.icmp_errors_use_inbound_ifaddr", inbound})
		kv = f.withRateLimit(kv)
	}
	return kv, optional
}

// withRateLimit sets a router's ICMP rate limits as Linux's defaults do
// when Spec.ICMPRateLimitMS is set: per destination, a burst of 6 errors,
// then one per ICMPRateLimitMS; 1000 a second in all, bursts of 50.
func (f *Fabric) withRateLimit(kv [][2]string) [][2]string {
	ms := f.Spec.ICMPRateLimitMS
	if ms <= 0 {
		return kv
	}
	limits := map[string]string{
		"net.ipv4.icmp_ratelimit":    strconv.Itoa(ms),
		"net.ipv6.icmp.ratelimit":    strconv.Itoa(ms),
		"net.ipv4.icmp_msgs_per_sec": "1000",
		"net.ipv4.icmp_msgs_burst":   "50",
	}
	for i := range kv {
		if v, ok := limits[kv[i][0]]; ok {
			kv[i][1] = v
		}
	}
	return kv
}

// waitLinksUp polls until every veth of the fabric is in state UP with
// its real queue discipline attached, or the timeout passes.
func (f *Fabric) waitLinksUp(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	return forEachNode(f.Nodes, func(n string) error {
		for {
			out, _, err := run(ctx, "", "ip", "-n", f.Namespace(n), "-o", "link", "show")
			if err != nil {
				return err
			}
			down := linksNotReady(out)
			if len(down) == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: links not up after %v: %s", f.Namespace(n), timeout, strings.Join(down, ", "))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// linksNotReady lists the to-* interfaces in `ip -o link show` output that
// are not in state UP or still have the noop queue discipline.
func linksNotReady(out string) []string {
	var down []string
	for _, l := range strings.Split(out, "\n") {
		fs := strings.Fields(l)
		if len(fs) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(fs[1], ":"), "@")
		if !strings.HasPrefix(name, "to-") {
			continue
		}
		if !strings.Contains(l, " state UP ") || strings.Contains(l, " qdisc noop ") {
			down = append(down, name)
		}
	}
	return down
}

// checkConnectivity makes one TCP connect per family from the client to the
// server (a refusal proves both directions as well as a handshake does),
// with ephemeral source ports, retried a bounded number of times.
func (f *Fabric) checkConnectivity(ctx context.Context) error {
	port := f.Spec.Ports[0]
	for _, pair := range [][2]netip.Addr{{f.Client4, f.Server4}, {f.Client6, f.Server6}} {
		ok := false
		var last error
		for try := 0; try < 3 && !ok; try++ {
			res, err := dialFrom(ctx, f.ClientNS(), netip.AddrPortFrom(pair[0], 0),
				netip.AddrPortFrom(pair[1], port), 2*time.Second)
			if err != nil {
				last = err
				if ctx.Err() != nil {
					break
				}
				continue
			}
			ok = res != dialFailed
		}
		if !ok {
			return fmt.Errorf("fabric %s: no TCP connectivity %s -> %s (last error: %v)",
				f.Spec.Name, pair[0], pair[1], last)
		}
	}
	return nil
}

// nftRules returns the nftables ruleset for router n ("" if none).
func (f *Fabric) nftRules(n string) string {
	var fwd, out []string
	for _, ft := range f.Spec.Faults {
		switch {
		case ft.Kind == DropSynAck && ft.Node == n:
			fwd = append(fwd, "tcp flags & (syn | ack) == (syn | ack) counter drop")
		case ft.Kind == Loss && ft.Node == n:
			fwd = append(fwd, fmt.Sprintf("numgen random mod 100 < %d counter drop", ft.Percent))
		case (ft.Kind == LinkDrop && (ft.Node == n || ft.Peer == n)) || (ft.Kind == LinkOneway && ft.Node == n):
			// A dead link carries nothing: neither forwarded packets nor the
			// router's own (its ICMP errors). Each end drops what it sends
			// into it; a link dead one way, only the end it is dead from.
			peer := ft.Peer
			if ft.Peer == n {
				peer = ft.Node
			}
			rule := fmt.Sprintf("oifname %q counter drop", IfName(peer))
			fwd = append(fwd, rule)
			// Neighbour discovery still works, as ARP does (nftables never
			// sees ARP): otherwise an IPv6 link dead one way would lose its
			// neighbours and die the other way too.
			out = append(out, fmt.Sprintf("oifname %q icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept", IfName(peer)), rule)
		case ft.Kind == Silent && ft.Node == n:
			out = append(out,
				"icmp type time-exceeded counter drop",
				"icmpv6 type time-exceeded counter drop")
		}
	}
	if len(fwd) == 0 && len(out) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("table inet esl {\n")
	if len(fwd) > 0 {
		b.WriteString("\tchain esl_fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n")
		for _, r := range fwd {
			b.WriteString("\t\t" + r + "\n")
		}
		b.WriteString("\t}\n")
	}
	if len(out) > 0 {
		b.WriteString("\tchain esl_out {\n\t\ttype filter hook output priority 0; policy accept;\n")
		for _, r := range out {
			b.WriteString("\t\t" + r + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

// ipidRules returns router n's nftables rules for its IP IDs ("" for the
// kernel's own). numgen counts in the low bits of a 32-bit register, of
// which the identification takes the high half: hence the shift.
func (f *Fabric) ipidRules(n string) string {
	if f.Spec.IPID != IPIDShared {
		return ""
	}
	// The counter starts where the router's seed (its name and the
	// fabric's seed) puts it.
	return fmt.Sprintf("table ip esl_ipid {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n"+
		"\t\tip id set numgen inc mod 65536 offset %d << 16\n\t}\n}\n", f.Seeds[n]%65536)
}

// ipOptionsRules returns every router's nftables rules for IPv4 packets
// with options ("" for Linux's own handling). Prerouting sees them before the
// kernel stamps or forwards them, whether they are for the router or
// through it.
func (f *Fabric) ipOptionsRules() string {
	if f.Spec.IPOptions != IPOptionsDrop {
		return ""
	}
	return "table ip esl_ipopt {\n\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n" +
		"\t\tip hdrlength != 5 counter drop\n\t}\n}\n"
}

// blackholeLines returns the `ip` batch lines for router n's blackholes.
func (f *Fabric) blackholeLines(n string) []string {
	var lines []string
	for _, ft := range f.Spec.Faults {
		if ft.Node != n {
			continue
		}
		switch ft.Kind {
		// IPv6 connected routes sit at metric 256; the blackhole must match it
		// to replace them (the default 1024 would lose to a connected route on r1/r2).
		case BlackholeFwd:
			lines = append(lines, "route replace blackhole "+ServerPrefix4.String(),
				"route replace blackhole "+ServerPrefix6.String()+" metric 256")
		case BlackholeRet:
			lines = append(lines, "route replace blackhole "+ClientPrefix4.String(),
				"route replace blackhole "+ClientPrefix6.String()+" metric 256")
			if f.Spec.fixedICMPPath() {
				// The router's own ICMP to the client takes the
				// fixed path's table: blackhole it there too, as a
				// router that cannot reach the client cannot send
				// it anything.
				lines = append(lines,
					fmt.Sprintf("route replace blackhole %s table %d", ClientPrefix4, icmpTable),
					fmt.Sprintf("route replace blackhole %s table %d metric %d", ClientPrefix6, icmpTable, icmpMetric6))
			}
		}
	}
	return lines
}

func (f *Fabric) applyFaults(ctx context.Context) error {
	return forEachNode(f.Routers, func(n string) error {
		if err := ipBatch(ctx, f.Namespace(n), f.blackholeLines(n)); err != nil {
			return err
		}
		rules := f.observeRules() + f.nftRules(n) + f.ipidRules(n) + f.ipOptionsRules()
		_, _, err := run(ctx, rules, "ip", "netns", "exec", f.Namespace(n), "nft", "-f", "-")
		return err
	})
}

// Down stops the server daemon (if one is recorded and still is ours),
// deletes every namespace of the lab and removes the state file. It
// tolerates a partly built or partly removed lab.
func (f *Fabric) Down(ctx context.Context) error {
	var errs []error
	if f.ServerPID > 0 {
		if err := stopDaemon(f.ServerPID, f.Spec.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if err := deleteNamespaces(ctx, f.Spec.Name); err != nil {
		errs = append(errs, err)
	}
	for _, p := range []string{StatePath(f.Spec.Name), ServeLogPath(f.Spec.Name), f.ServerLog, TokenPath(f.Spec.Name)} {
		if p == "" || filepath.Dir(p) != StateDir {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes whatever is left of the named lab: state file, daemon,
// namespaces.
func Cleanup(ctx context.Context, name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	f, err := Load(name)
	if err != nil {
		f = &Fabric{Spec: Spec{Name: name}}
	}
	return f.Down(ctx)
}

func deleteNamespaces(ctx context.Context, name string) error {
	nss, err := netnsNames(ctx)
	if err != nil {
		return err
	}
	var lines []string
	for _, ns := range nss {
		if n, ok := labOfNS(ns); ok && n == name {
			lines = append(lines, "netns del "+ns)
		}
	}
	if len(lines) == 0 {
		return nil
	}
	_, failed, err := ipBatchForce(ctx, "", lines)
	if err != nil {
		return err
	}
	if len(failed) > 0 {
		var msgs []string
		for i, m := range failed {
			msgs = append(msgs, fmt.Sprintf("%s: %s", lines[i-1], m))
		}
		sort.Strings(msgs)
		return fmt.Errorf("delete namespaces: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// daemonIsOurs reports whether pid runs `... lab serve --name NAME`.
func daemonIsOurs(pid int, name string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	serve, named := false, false
	for i, a := range args {
		if a == "serve" {
			serve = true
		}
		if (a == "--name" && i+1 < len(args) && args[i+1] == name) || a == "--name="+name {
			named = true
		}
	}
	return serve && named
}

// DaemonAlive reports whether the recorded server daemon still runs.
func (f *Fabric) DaemonAlive() bool {
	return f.ServerPID > 0 && daemonIsOurs(f.ServerPID, f.Spec.Name)
}

func stopDaemon(pid int, name string) error {
	if !daemonIsOurs(pid, name) {
		return nil // gone already, or the pid was reused: not ours to kill
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return fmt.Errorf("stop server daemon %d: %w", pid, err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if !daemonIsOurs(pid, name) || isZombie(pid) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill server daemon %d: %w", pid, err)
	}
	return nil
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] == 'Z'
	}
	return false
}

// Status is a human summary of the lab: nodes, ECMP widths, seeds, faults,
// and whether the namespaces and the server daemon are there.
func (f *Fabric) Status(ctx context.Context) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s (up since %s)\n", f.Spec.Name, f.Created.Format(time.RFC3339))
	if f.Spec.Width2 > 0 {
		fmt.Fprintf(&b, "  topology: c - r1 =%d= p1..p%d =%d= q1..q%d - r2 - s (two tiers, %d paths)\n",
			f.Spec.Width, f.Spec.Width, f.Spec.Width2, f.Spec.Width2, f.Spec.Width*f.Spec.Width2)
	} else {
		fmt.Fprintf(&b, "  topology: c - r1 =%d= p1..p%d - r2 - s (one tier, %d paths)\n",
			f.Spec.Width, f.Spec.Width, f.Spec.Width)
	}
	fmt.Fprintf(&b, "  client:   %s, %s in netns %s\n", f.Client4, f.Client6, f.ClientNS())
	ports := make([]string, len(f.Spec.Ports))
	for i, p := range f.Spec.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	fmt.Fprintf(&b, "  server:   %s, %s ports %s in netns %s\n", f.Server4, f.Server6, strings.Join(ports, ","), f.ServerNS())
	fmt.Fprintf(&b, "  hash:     policy 3 (custom: src, dst, proto, sport, dport), spec seed %d\n", f.Spec.Seed)
	switch {
	case f.Spec.routerIDSource():
		fmt.Fprintf(&b, "  icmp:     %s: errors come from each router's ID (%sK, %sK)\n",
			ICMPFromRouterID, routerIDBase4, routerIDBase6)
	case f.Spec.inboundSource():
		fmt.Fprintf(&b, "  icmp:     %s: errors come from the address of the link the packet came in on\n",
			ICMPFromInbound)
	default:
		fmt.Fprintf(&b, "  icmp:     %s: errors come from the address of the link they leave by (the kernel's default)\n",
			ICMPFromOutgoing)
	}
	if f.Spec.fixedICMPPath() {
		fmt.Fprintf(&b, "  icmp:     %s path: each router sends its own errors toward the client via one fixed next hop (icmp via)\n",
			ICMPPathFixed)
	} else {
		fmt.Fprintf(&b, "  icmp:     %s path: each router sends its errors for a flow the way that flow's return traffic goes\n",
			ICMPPathFlow)
	}
	for _, r := range f.Routers {
		line := fmt.Sprintf("    %-4s seed %-10d  id %-14s %-18s", r, f.Seeds[r], f.RouterID(r, false), f.RouterID(r, true))
		if nh := f.ICMPNextHop(r); nh != "" {
			line += fmt.Sprintf("  icmp via %-3s", nh)
		}
		var fs []string
		for _, ft := range f.Spec.Faults {
			if ft.Node == r || ft.Peer == r {
				fs = append(fs, ft.String())
			}
		}
		if len(fs) > 0 {
			line += "  faults: " + strings.Join(fs, " ")
		}
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	if len(f.Spec.Faults) == 0 {
		b.WriteString("  faults:   none\n")
	}
	nss, err := netnsNames(ctx)
	if err != nil {
		return b.String(), err
	}
	have := map[string]bool{}
	for _, ns := range nss {
		have[ns] = true
	}
	var missing []string
	for _, n := range f.Nodes {
		if !have[f.Namespace(n)] {
			missing = append(missing, f.Namespace(n))
		}
	}
	if len(missing) == 0 {
		fmt.Fprintf(&b, "  netns:    all %d present\n", len(f.Nodes))
	} else {
		fmt.Fprintf(&b, "  netns:    MISSING %s\n", strings.Join(missing, " "))
	}
	switch {
	case f.ServerPID == 0:
		b.WriteString("  daemon:   none recorded\n")
	case f.DaemonAlive():
		fmt.Fprintf(&b, "  daemon:   pid %d alive\n", f.ServerPID)
	default:
		fmt.Fprintf(&b, "  daemon:   pid %d NOT running\n", f.ServerPID)
	}
	return b.String(), nil
}
