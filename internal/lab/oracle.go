package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Hop is one router on a path, with the interfaces the packet came in on and
// went out of.
type Hop struct {
	Node string `json:"node"`
	In   string `json:"in"`
	Out  string `json:"out"`
}

// Verdict is what a probe of a five-tuple should see.
type Verdict uint8

// The verdicts.
const (
	Works Verdict = iota // the probe and its answer get through
	Fails                // the probe or its answer is dropped, always
	Lossy                // the path crosses a loss fault: sometimes lost
)

func (v Verdict) String() string {
	switch v {
	case Works:
		return "works"
	case Fails:
		return "fails"
	case Lossy:
		return "lossy"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// MarshalText makes verdicts readable in JSON.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (v *Verdict) UnmarshalText(b []byte) error {
	for _, c := range []Verdict{Works, Fails, Lossy} {
		if string(b) == c.String() {
			*v = c
			return nil
		}
	}
	return fmt.Errorf("unknown verdict %q", b)
}

// Expectation is the oracle's answer for one five-tuple.
type Expectation struct {
	Verdict Verdict `json:"verdict"`
	// Forward lists the routers from r1 to r2 as far as the probe gets.
	// The router that drops it ends the list: with an empty Out if it has
	// no usable route (blackhole), else with the interface it chose.
	Forward []Hop `json:"forward,omitempty"`
	// Return is the same for the answer (reversed tuple), from r2 to r1;
	// empty if the probe never reaches the server.
	Return []Hop  `json:"return,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ForwardNodes lists the routers of the forward path, e.g. [r1 p3 r2].
func (e Expectation) ForwardNodes() []string { return hopNodes(e.Forward) }

// ReturnNodes lists the routers of the return path, e.g. [r2 p1 r1].
func (e Expectation) ReturnNodes() []string { return hopNodes(e.Return) }

func hopNodes(hs []Hop) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.Node
	}
	return out
}

// Oracle tuning.
const (
	dialTimeout = 1500 * time.Millisecond // one connect (the kernel sends 2 SYNs in it)
	dialTries   = 2                       // connects (or echo requests) per IPv6 tuple
)

// Expect tells what a probe of t should see. See ExpectAll.
func (f *Fabric) Expect(ctx context.Context, t hash.FiveTuple) (Expectation, error) {
	es, err := f.ExpectAll(ctx, []hash.FiveTuple{t})
	if err != nil {
		return Expectation{}, err
	}
	return es[0], nil
}

// ExpectAll tells, for each five-tuple (client to server, TCP or ICMP echo),
// what a probe should see, from the kernel's own decisions:
//
//   - IPv4 (TCP and ICMP): the path is walked router by router with
//     `ip route get DST from SRC iif IN ipproto P sport S dport D`, batched
//     per router and round, forward from r1 and back (reversed tuple) from
//     r2. A missing or blackhole route fails the tuple. Then the nftables
//     faults are applied to the paths: drop-synack on the return path
//     fails TCP, a dead link on either path fails, loss makes it Lossy.
//     For ICMP the kernel's custom hash sees no ports, so every echo id
//     rides the same path. For TCP the oracle assumes the port listens:
//     a closed port's RST is not a SYN-ACK and passes drop-synack.
//   - IPv6: `ip -6 route get` hashes differently from the IPv6 forwarding
//     path (it names the wrong member for most ports), so it is no oracle.
//     The verdict comes from real traffic from the client namespace: TCP
//     connects with that exact source port, all at once, two rounds of
//     1.5 s (a handshake or a refusal is Works; 2048 ports take about
//     3.5 s), or echo requests with that id (two rounds). The hops are the
//     routers that recorded the tuple in their nftables sets (observe.go);
//     a path that crosses a loss fault is Lossy whatever the traffic saw.
//
// Tuples must go from the lab's client address to its server address.
// IPv6 TCP tuples bind their source ports in the client namespace for up
// to 3 s: run ExpectAll before or after a sweep of the same ports, not
// during it (and not two ExpectAll calls on the same IPv6 tuples at once).
func (f *Fabric) ExpectAll(ctx context.Context, ts []hash.FiveTuple) ([]Expectation, error) {
	for i, t := range ts {
		if err := f.checkTuple(t); err != nil {
			return nil, fmt.Errorf("tuple %d (%s): %w", i, t, err)
		}
	}
	es := make([]Expectation, len(ts))
	var v4, v6tcp, v6icmp []int
	for i, t := range ts {
		switch {
		case !t.Is6():
			v4 = append(v4, i)
		case t.Proto == hash.ProtoTCP:
			v6tcp = append(v6tcp, i)
		default:
			v6icmp = append(v6icmp, i)
		}
	}
	if len(v4) > 0 {
		if err := f.walkAll(ctx, ts, v4, es); err != nil {
			return nil, err
		}
		for _, i := range v4 {
			f.applyNftFaults(ts[i], &es[i])
		}
	}
	if len(v6tcp)+len(v6icmp) == 0 {
		return es, nil
	}
	ok := make([]bool, len(ts))
	how := make([]string, len(ts))
	if err := f.connectAll(ctx, ts, v6tcp, ok, how); err != nil {
		return nil, err
	}
	if len(v6icmp) > 0 {
		ids := make([]uint16, len(v6icmp))
		for k, i := range v6icmp {
			ids[k] = ts[i].SrcPort
		}
		got, err := pingAll(ctx, f.ClientNS(), f.Client6, f.Server6, ids, dialTries, dialTimeout)
		if err != nil {
			return nil, err
		}
		for _, i := range v6icmp {
			ok[i], how[i] = got[ts[i].SrcPort], "echo reply"
		}
	}
	obs, err := f.observe(ctx)
	if err != nil {
		return nil, fmt.Errorf("oracle: read observed paths: %w", err)
	}
	for _, idx := range [][]int{v6tcp, v6icmp} {
		for _, i := range idx {
			f.judgeObserved(ts[i], obs, ok[i], how[i], &es[i])
		}
	}
	return es, nil
}

// judgeObserved sets an expectation from real traffic (ok: an answer came
// back) and the observed path.
func (f *Fabric) judgeObserved(t hash.FiveTuple, obs observation, ok bool, how string, e *Expectation) {
	e.Forward, e.Return = f.observedPaths(obs, t)
	// A router with a blackhole drops the packet: no way out.
	for _, hs := range []struct {
		hops []Hop
		kind FaultKind
	}{{e.Forward, BlackholeFwd}, {e.Return, BlackholeRet}} {
		if len(hs.hops) > 0 && f.hasFault(hs.hops[len(hs.hops)-1].Node, hs.kind) {
			hs.hops[len(hs.hops)-1].Out = ""
		}
	}
	// A router that sends into a dead link: the packet left by that link
	// (when only one of its dead links leads the right way).
	for _, hs := range []struct {
		hops []Hop
		dir  int
	}{{e.Forward, +1}, {e.Return, -1}} {
		n := len(hs.hops)
		if n == 0 || hs.hops[n-1].Out != "" {
			continue
		}
		last := hs.hops[n-1].Node
		var outs []string
		for _, nb := range f.topology().neighbours(last, hs.dir) {
			for _, ft := range f.Spec.Faults {
				if ft.DropsInto(last, nb) {
					outs = append(outs, IfName(nb))
				}
			}
		}
		if len(outs) == 1 && !f.hasFault(last, BlackholeFwd) && !f.hasFault(last, BlackholeRet) {
			hs.hops[n-1].Out = outs[0]
		}
	}
	probe := Expectation{Forward: e.Forward, Return: e.Return}
	f.applyNftFaults(t, &probe)
	lossy := f.lossOn(e.Forward, e.Return)
	switch {
	case len(lossy) > 0:
		e.Verdict = Lossy
		e.Reason = "crosses " + strings.Join(lossy, ", ")
		if ok {
			e.Reason += "; got through: " + how
		} else {
			e.Reason += "; no answer"
		}
	case ok:
		e.Verdict, e.Reason = Works, how
	default:
		e.Verdict = Fails
		e.Reason = fmt.Sprintf("no answer to %d tries", dialTries)
		if probe.Verdict == Fails {
			e.Reason = probe.Reason
		} else if n := len(e.Forward); n > 0 && e.Forward[n-1].Out == "" {
			e.Reason = fmt.Sprintf("probe dies at %s (forward)", e.Forward[n-1].Node)
		} else if n := len(e.Return); n > 0 && e.Return[n-1].Out == "" {
			e.Reason = fmt.Sprintf("answer dies at %s (return)", e.Return[n-1].Node)
		}
	}
}

func (f *Fabric) hasFault(node string, kind FaultKind) bool {
	for _, ft := range f.Spec.Faults {
		if ft.Node == node && ft.Kind == kind {
			return true
		}
	}
	return false
}

// lossOn lists the loss faults on the routers of either path.
func (f *Fabric) lossOn(fwd, ret []Hop) []string {
	var out []string
	for _, p := range []struct {
		hops []Hop
		dir  string
	}{{fwd, "forward"}, {ret, "return"}} {
		for _, h := range p.hops {
			for _, ft := range f.Spec.Faults {
				if ft.Kind == Loss && ft.Node == h.Node {
					out = append(out, fmt.Sprintf("%s (%s path)", ft, p.dir))
				}
			}
		}
	}
	return out
}

func (f *Fabric) checkTuple(t hash.FiveTuple) error {
	src, dst := t.Src.Unmap(), t.Dst.Unmap()
	switch {
	case src.Is4() && dst.Is4():
		if src != f.Client4 || dst != f.Server4 {
			return fmt.Errorf("want %s -> %s", f.Client4, f.Server4)
		}
		if t.Proto != hash.ProtoTCP && t.Proto != hash.ProtoICMP {
			return fmt.Errorf("protocol %d: want tcp or icmp", t.Proto)
		}
	case src.Is6() && dst.Is6():
		if src != f.Client6 || dst != f.Server6 {
			return fmt.Errorf("want %s -> %s", f.Client6, f.Server6)
		}
		if t.Proto != hash.ProtoTCP && t.Proto != hash.ProtoICMPv6 {
			return fmt.Errorf("protocol %d: want tcp or icmpv6", t.Proto)
		}
	default:
		return errors.New("mixed or invalid address families")
	}
	if t.Proto == hash.ProtoTCP && (t.SrcPort == 0 || t.DstPort == 0) {
		return errors.New("tcp needs both ports")
	}
	return nil
}

// walker follows one tuple in one direction.
type walker struct {
	exp  int
	fwd  bool
	t    hash.FiveTuple // as sent in this direction
	node string         // router to ask next
	iif  string
	hops []Hop
	done bool
	fail string
}

// routeGetLine is the `ip route get` query for w at its current router.
func (w *walker) routeGetLine() string {
	src, dst := w.t.Src.Unmap(), w.t.Dst.Unmap()
	line := fmt.Sprintf("route get %s from %s iif %s ipproto %d", dst, src, w.iif, w.t.Proto)
	if w.t.Proto == hash.ProtoTCP {
		line += fmt.Sprintf(" sport %d dport %d", w.t.SrcPort, w.t.DstPort)
	}
	return line
}

// walkAll walks every tuple forward and back, in rounds: each round asks
// every router that has walkers waiting, in one ip -batch per router, all
// routers at once.
func (f *Fabric) walkAll(ctx context.Context, ts []hash.FiveTuple, idx []int, es []Expectation) error {
	ws := make([]*walker, 0, 2*len(idx))
	for _, i := range idx {
		t := ts[i]
		ws = append(ws,
			&walker{exp: i, fwd: true, t: t, node: "r1", iif: IfName("c")},
			&walker{exp: i, fwd: false, t: t.Reverse(), node: "r2", iif: IfName("s")})
	}
	maxRounds := len(f.topology().tiers) + 1
	for round := 0; ; round++ {
		byNode := map[string][]*walker{}
		for _, w := range ws {
			if !w.done {
				byNode[w.node] = append(byNode[w.node], w)
			}
		}
		if len(byNode) == 0 {
			break
		}
		if round >= maxRounds {
			return fmt.Errorf("oracle: path walk did not end after %d routers", maxRounds)
		}
		var mu sync.Mutex
		var errs []error
		var wg sync.WaitGroup
		for node, group := range byNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f.stepGroup(ctx, node, group); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	for _, w := range ws {
		e := &es[w.exp]
		if w.fwd {
			e.Forward = w.hops
		} else {
			e.Return = w.hops
		}
		if w.fail != "" && e.Verdict != Fails {
			e.Verdict = Fails
			e.Reason = w.fail
		}
	}
	return nil
}

// stepGroup asks node where each walker goes next and advances them.
func (f *Fabric) stepGroup(ctx context.Context, node string, group []*walker) error {
	t := f.topology()
	if !t.isRouter(node) {
		return fmt.Errorf("oracle: walked into non-router %q", node)
	}
	lines := make([]string, len(group))
	for i, w := range group {
		lines[i] = w.routeGetLine()
	}
	out, failed, err := ipBatchForce(ctx, f.Namespace(node), lines)
	if err != nil {
		return fmt.Errorf("oracle at %s: %w", node, err)
	}
	recs := splitRecords(out)
	if len(recs)+len(failed) != len(lines) {
		return fmt.Errorf("oracle at %s: %d queries gave %d answers and %d errors", node, len(lines), len(recs), len(failed))
	}
	dir := "forward"
	next := 0
	for i, w := range group {
		if !w.fwd {
			dir = "return"
		} else {
			dir = "forward"
		}
		if msg, bad := failed[i+1]; bad {
			w.done = true
			msg = strings.TrimPrefix(msg, "RTNETLINK answers: ")
			if msg == "Invalid argument" {
				msg = "blackhole (route get: Invalid argument)"
			}
			w.fail = fmt.Sprintf("no route at %s (%s): %s", node, dir, msg)
			w.hops = append(w.hops, Hop{Node: node, In: w.iif}) // dies here
			continue
		}
		r, perr := parseRouteGet(recs[next])
		next++
		if perr != nil {
			return fmt.Errorf("oracle at %s: %w", node, perr)
		}
		if r.Type != "" && r.Type != "unicast" {
			w.done = true
			w.fail = fmt.Sprintf("%s route at %s (%s)", r.Type, node, dir)
			w.hops = append(w.hops, Hop{Node: node, In: w.iif}) // dies here
			continue
		}
		peer, ok := strings.CutPrefix(r.Dev, "to-")
		if !ok {
			w.done = true
			w.fail = fmt.Sprintf("route at %s (%s) leaves by %q", node, dir, r.Dev)
			continue
		}
		w.hops = append(w.hops, Hop{Node: node, In: w.iif, Out: r.Dev})
		end := "s"
		if !w.fwd {
			end = "c"
		}
		switch {
		case peer == end:
			w.done = true
		case t.isRouter(peer) && len(w.hops) < len(t.tiers):
			w.node, w.iif = peer, IfName(node)
		default:
			w.done = true
			w.fail = fmt.Sprintf("route at %s (%s) goes to %s", node, dir, peer)
		}
	}
	return nil
}

// splitRecords splits `ip route get` batch output into one record per
// answer: an answer starts with an unindented line.
func splitRecords(out string) []string {
	var recs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if l[0] != ' ' && l[0] != '\t' {
			recs = append(recs, l)
		} else if len(recs) > 0 {
			recs[len(recs)-1] += "\n" + l
		}
	}
	return recs
}

// routeGet is the useful part of one `ip route get` answer.
type routeGet struct {
	Type string // "" for unicast, else blackhole, unreachable, local...
	Dst  netip.Addr
	Via  netip.Addr
	Dev  string
}

var routeTypes = map[string]bool{
	"unicast": true, "local": true, "broadcast": true, "multicast": true, "anycast": true,
	"blackhole": true, "unreachable": true, "prohibit": true, "throw": true, "nat": true,
}

// parseRouteGet parses the first line of one answer, e.g.
// "198.18.2.2 from 198.18.1.1 via 198.19.1.2 dev to-p1 table main".
func parseRouteGet(rec string) (routeGet, error) {
	line, _, _ := strings.Cut(rec, "\n")
	fs := strings.Fields(line)
	var r routeGet
	if len(fs) > 0 && routeTypes[fs[0]] {
		r.Type, fs = fs[0], fs[1:]
	}
	if len(fs) == 0 {
		return r, fmt.Errorf("empty route answer %q", rec)
	}
	dst, err := netip.ParseAddr(fs[0])
	if err != nil {
		return r, fmt.Errorf("route answer %q: %w", line, err)
	}
	r.Dst = dst
	for i := 1; i+1 < len(fs); i++ {
		switch fs[i] {
		case "via":
			v := fs[i+1]
			if (v == "inet" || v == "inet6") && i+2 < len(fs) {
				v = fs[i+2]
			}
			if a, err := netip.ParseAddr(v); err == nil {
				r.Via = a
			}
		case "dev":
			if r.Dev == "" {
				r.Dev = fs[i+1]
			}
		}
	}
	if r.Dev == "" && (r.Type == "" || r.Type == "unicast") {
		return r, fmt.Errorf("route answer %q has no dev", line)
	}
	return r, nil
}

// applyNftFaults turns a route-level verdict into a packet-level one by
// applying the nftables faults to the walked paths, and cuts the paths
// where the packet dies: a probe that never reaches the server has no
// return path.
func (f *Fabric) applyNftFaults(t hash.FiveTuple, e *Expectation) {
	if n := len(e.Forward); n == 0 || e.Forward[n-1].Out == "" {
		e.Return = nil // the probe died on its way: no answer
		return
	}
	if i, reason := f.nftDrop(t, e.Forward, false); i >= 0 {
		e.Forward, e.Return = e.Forward[:i+1], nil
		e.Verdict, e.Reason = Fails, reason
		return
	}
	if i, reason := f.nftDrop(t, e.Return, true); i >= 0 {
		e.Return = e.Return[:i+1]
		e.Verdict, e.Reason = Fails, reason
		return
	}
	if e.Verdict == Fails {
		return // no route back
	}
	if lossy := f.lossOn(e.Forward, e.Return); len(lossy) > 0 {
		e.Verdict, e.Reason = Lossy, "crosses "+strings.Join(lossy, ", ")
	}
}

// nftDrop finds the first hop whose nftables rules always drop the packet
// (drop-synack on the return path for TCP, a dead link), or -1.
func (f *Fabric) nftDrop(t hash.FiveTuple, hops []Hop, ret bool) (int, string) {
	dir := "forward"
	if ret {
		dir = "return"
	}
	for i, h := range hops {
		for _, ft := range f.Spec.Faults {
			switch ft.Kind {
			case DropSynAck:
				if ret && ft.Node == h.Node && t.Proto == hash.ProtoTCP {
					return i, fmt.Sprintf("%s drops the SYN-ACK (%s path)", ft, dir)
				}
			case LinkDrop, LinkOneway:
				if ft.DropsInto(h.Node, strings.TrimPrefix(h.Out, IfName(""))) {
					return i, fmt.Sprintf("%s: %s sends into the dead link (%s path)", ft, h.Node, dir)
				}
			}
		}
	}
	return -1, ""
}

// connectAll connects once per IPv6 TCP tuple idx (up to dialTries times)
// from the client namespace with that tuple's source port, all at once in
// chunks, and records whether an answer came back.
func (f *Fabric) connectAll(ctx context.Context, ts []hash.FiveTuple, idx []int, ok []bool, how []string) error {
	// One connect per distinct tuple.
	type key struct{ sport, dport uint16 }
	first := map[key]int{}
	var reqs []connReq
	var reqOf []int // tuple index of each request
	for _, i := range idx {
		k := key{ts[i].SrcPort, ts[i].DstPort}
		if _, dup := first[k]; dup {
			continue
		}
		first[k] = i
		reqs = append(reqs, connReq{
			src: netip.AddrPortFrom(ts[i].Src.Unmap(), ts[i].SrcPort),
			dst: netip.AddrPortFrom(ts[i].Dst.Unmap(), ts[i].DstPort),
		})
		reqOf = append(reqOf, i)
	}
	chunk := connectChunk()
	for try := 0; try < dialTries && len(reqs) > 0; try++ {
		var again []connReq
		var againOf []int
		for lo := 0; lo < len(reqs); lo += chunk {
			hi := min(lo+chunk, len(reqs))
			res, err := connectBatch(ctx, f.ClientNS(), reqs[lo:hi], dialTimeout)
			if err != nil {
				return fmt.Errorf("oracle: %w", err)
			}
			for j, r := range res {
				i := reqOf[lo+j]
				switch r {
				case dialConnected:
					ok[i], how[i] = true, "connected"
				case dialRefused:
					ok[i], how[i] = true, "refused (RST came back)"
				default:
					again = append(again, reqs[lo+j])
					againOf = append(againOf, i)
				}
			}
		}
		reqs, reqOf = again, againOf
	}
	for _, i := range idx {
		j := first[key{ts[i].SrcPort, ts[i].DstPort}]
		ok[i], how[i] = ok[j], how[j]
	}
	return nil
}

// connectChunk is how many sockets connectBatch may hold open at once.
func connectChunk() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur < 256 {
		return 64
	}
	return int(min(rl.Cur/2, 2048))
}
