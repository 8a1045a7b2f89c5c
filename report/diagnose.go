package report

// Diagnosis of a trace: where do the failing flows die?
//
// Every flow is read as a path of nodes, one per TTL, after a virtual source
// node at TTL 0. A node is the address that answered at that TTL, or, for a
// silent TTL ("*"), the placeholder "*X+k": the k-th silent hop after the
// last address X that answered on that flow (X is the source when nothing
// answered yet). Two flows share a node when they saw the same address, or
// the same silence the same distance behind the same address. A hop that
// answered is never evidence of loss; a silent hop is never blamed by
// itself.
//
// Only ok flows are healthy and only fail flows are failing; flaky flows are
// reported (in the text and the buckets) but do not vote. For each failing
// flow Diagnose finds where it stops answering:
//
//   - D, the deepest node it shares with a healthy flow, from its last
//     answering hop on through silence that healthy flows share (a silent
//     router that healthy flows cross is not where the failing flow died),
//     as long as failing flows through the node before that silence reach
//     it no more often than the healthy flows' share predicts (its 95%
//     upper bound, within two standard deviations): if they go silent there
//     much more often, their failure silenced them. Hops the flow crossed
//     before its last answer are irrelevant: it went on after them.
//   - If every healthy flow through D gets the destination's answer at the
//     next TTL, the failing flow got as far as healthy flows do: forward is
//     exonerated, the fault is on the return path (return).
//   - If every healthy flow through D goes on to another router, the failing
//     flow died on the forward path (forward): right after D, or after
//     another node of the silent stretch that healthy flows share (however
//     rare): the deepest one after which exactly one missing next hop can
//     be named (see below), else the one with the fewest candidates, else
//     D.
//   - If the flow's last answer is an address no healthy flow crosses, it is
//     compared by depth with the healthy flows through its deepest shared
//     node: one hop short of the destination is return (the last router
//     answered from another address, as routers that source ICMP from the
//     inbound or an ECMP-chosen interface do); shorter is forward, that hop
//     being the suspect.
//   - A router's destination-unreachable or a routing loop (an address at
//     two TTLs at least two apart) is forward at once.
//   - Anything else is unknown: a failing flow that got no answer at any TTL
//     (even behind a first hop that is silent for everyone), healthy flows
//     disagreeing about what follows D.
//
// That per-flow reading supplies the evidence; the verdict comes from
// hypothesis testing (hypothesis.go): every single fault, and the best pairs
// of a forward and a return fault, is scored by how well it predicts every
// flow, and decide (verdict.go) reads the direction and the suspects off
// the ranking, saying unknown, with the measurement that would decide, when
// a hypothesis of the other direction comes within a likelihood ratio of
// 10. none means no flow fails.
//
// Forward suspects are grouped by where the flows die. For a death after
// D at TTL t, the missing next hop is inferred when the data allows: a
// router that healthy flows reach at TTL t+1 through other nodes at TTL t
// but that no flow ever reaches after D. The suspect is then the link
// Addr -> Next, Addr being D or, when D is silent, the last address that
// answered before it (the evidence then says the link starts at the silent
// hop behind Addr). When nothing can be inferred the suspect is the hop Addr
// (Next invalid): the next hop after it on the failing flows never answers.
// So for a one-tier blackhole (every member is seen after r1, the dead one
// never answers) the suspect is the hop r1; for a dead link p1 -> q2 it is
// that link; behind a silent p1 it is r1 -> q2 with the evidence naming the
// silent hop; for a blackholed q2 (silent for everyone) it is one hop
// suspect per p_i that failing flows die after, and the text names the
// common silent next tier.
//
// Routers that answer from one address per link (the inbound interface)
// would defeat the inference by address, so addresses are first grouped
// into routers: addresses one flow saw at one TTL (TraceHop.Others), and
// addresses at one TTL that lead to the same next address, unless one node
// leads to two of them (then they are distinct routers behind a shared next
// hop), and addresses whose answers count up from one IP ID counter
// (alias.go). Only answering routers other than D's own count as "other hops",
// and a link is inferred only when some router seen after D is also reached
// from one of them: where next hops answer from per-link addresses (seen
// from one router only), no link is named.

import (
	"cmp"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"

	"github.com/ecmpscan/ecmpscan/hash"
)

const srcNode = "src"

// pnode is one node of a flow's path; pnode i is TTL i, 0 being the source.
type pnode struct {
	ttl     int
	id      string
	addr    netip.Addr // the answering address; invalid for silence and the source
	last    netip.Addr // the last answering address at or before this node
	reached bool       // the destination answered here
	hop     *TraceHop  // nil for the source
}

func (n pnode) answered() bool { return n.addr.IsValid() && !n.reached }

// silentID names the k-th silent hop after node last.
func silentID(last string, k int) string { return "*" + last + "+" + strconv.Itoa(k) }

// tracePath turns a flow into its nodes, up to the destination's answer.
func tracePath(f *FlowTrace) []pnode {
	p := []pnode{{id: srcNode}}
	lastID, lastTTL := srcNode, 0
	var last netip.Addr
	for i := range f.Hops {
		h := &f.Hops[i]
		n := pnode{ttl: i + 1, hop: h, last: last}
		switch {
		case h.Reached:
			n.id, n.addr, n.reached = "dest", h.Addr, true
		case h.Addr.IsValid():
			n.id, n.addr = h.Addr.String(), h.Addr
			lastID, lastTTL, last = n.id, n.ttl, h.Addr
			n.last = last
		default:
			n.id = silentID(lastID, n.ttl-lastTTL)
		}
		p = append(p, n)
		if h.Reached {
			break
		}
	}
	return p
}

type occ struct{ flow, pos int }

// analysis holds the flows (sorted) and their paths, indexed by node.
type analysis struct {
	flows   []FlowTrace
	paths   [][]pnode
	all     map[string][]occ // first occurrence of each node per flow
	healthy map[string][]occ // the same for ok flows only
	router  map[netip.Addr]netip.Addr
	nexts   map[string]*nextInfo // by TTL and node
	silence map[string]bool      // structural, by node and silence
	fated   map[int]fate         // fateOf, by flow
	// tentative is a forward and a return fault together that fit better
	// than the best single return fault, but not by the decisive ratio.
	tentative *Hypothesis
	// rival is what the verdict's margin is over (decide).
	rival    *Hypothesis
	readings map[alter]*fabricReading // reading, cached
	// sharedIPID are the address groups that answer from one IP ID
	// counter (alias.go).
	sharedIPID [][]netip.Addr
	// rateLimited are the TTLs whose routers rate-limit their answers
	// (ratelimit.go).
	rateLimited map[int]bool
	// watched: a responder at the target watched the flows, and traces
	// the return paths itself (no need to tell the user how).
	watched bool
	// first is a node of the one router that answers at TTL 1 (asRouter);
	// nil where none or several do.
	first *pnode
}

func newAnalysis(flows []FlowTrace) *analysis { return newAnalysisWith(flows, nil) }

// newAnalysisWith also takes groups of addresses known to be one router's
// (Sample.OneRouter).
func newAnalysisWith(flows []FlowTrace, oneRouter [][]netip.Addr) *analysis {
	fs := slices.Clone(flows)
	slices.SortStableFunc(fs, func(a, b FlowTrace) int {
		return cmp.Or(cmp.Compare(a.Sport, b.Sport), cmp.Compare(a.Signature(), b.Signature()),
			cmp.Compare(a.State, b.State), cmp.Compare(a.Received, b.Received), cmp.Compare(a.Sent, b.Sent))
	})
	a := &analysis{flows: fs, all: map[string][]occ{}, healthy: map[string][]occ{}, nexts: map[string]*nextInfo{}, silence: map[string]bool{}, fated: map[int]fate{}}
	for i := range fs {
		p := tracePath(&fs[i])
		a.paths = append(a.paths, p)
		seen := map[string]bool{}
		for pos, n := range p {
			if seen[n.id] {
				continue
			}
			seen[n.id] = true
			a.all[n.id] = append(a.all[n.id], occ{i, pos})
			if fs[i].State == hash.StateOK {
				a.healthy[n.id] = append(a.healthy[n.id], occ{i, pos})
			}
		}
	}
	a.groupRouters(oneRouter)
	a.first = a.firstHop()
	a.rateLimited = map[int]bool{}
	for _, t := range RateLimitedTTLs(fs) {
		a.rateLimited[t] = true
	}
	return a
}

// firstHop is a node of the one router that every answer at TTL 1 comes
// from (grouped as routers); nil where no flow or several routers answer
// there.
func (a *analysis) firstHop() *pnode {
	var first *pnode
	for _, p := range a.paths {
		if len(p) < 2 || !p[1].answered() {
			continue
		}
		switch {
		case first == nil:
			first = &p[1]
		case a.routerOf(first.addr) != a.routerOf(p[1].addr):
			return nil
		}
	}
	return first
}

// unionFind over addresses; the class representative is chosen later.
type unionFind map[netip.Addr]netip.Addr

func (u unionFind) find(x netip.Addr) netip.Addr {
	if _, ok := u[x]; !ok {
		u[x] = x
	}
	for u[x] != x {
		u[x] = u[u[x]]
		x = u[x]
	}
	return x
}

func (u unionFind) union(x, y netip.Addr) { u[u.find(x)] = u.find(y) }

// groups are the classes of two or more addresses, each sorted, in order
// of their first address.
func (u unionFind) groups() [][]netip.Addr {
	members := map[netip.Addr][]netip.Addr{}
	for x := range u {
		r := u.find(x)
		members[r] = append(members[r], x)
	}
	var out [][]netip.Addr
	for _, g := range members {
		if len(g) > 1 {
			slices.SortFunc(g, netip.Addr.Compare)
			out = append(out, g)
		}
	}
	slices.SortFunc(out, func(a, b []netip.Addr) int { return a[0].Compare(b[0]) })
	return out
}

// groupRouters guesses which addresses belong to one router (see the file
// comment), joining those known to be (oneRouter), and maps each address
// to the smallest address of its router.
func (a *analysis) groupRouters(oneRouter [][]netip.Addr) {
	final := unionFind{}
	preds := map[netip.Addr]map[netip.Addr]bool{} // next address -> answering addresses before it
	nexts := map[string]map[netip.Addr]bool{}     // node -> answering addresses after it
	for _, p := range a.paths {
		for pos, n := range p {
			if !n.answered() {
				continue
			}
			final.find(n.addr)
			for _, o := range n.hop.Others {
				if o.IsValid() {
					final.union(n.addr, o)
				}
			}
			if pos == 0 {
				continue
			}
			prev := p[pos-1]
			addTo(nexts, prev.id, n.addr)
			if prev.answered() {
				addTo(preds, n.addr, prev.addr)
			}
		}
	}
	// Addresses that answer from one IP ID counter (alias.go).
	a.sharedIPID = sharedCounters(a.flows)
	for _, g := range slices.Concat(a.sharedIPID, oneRouter) {
		for _, x := range g[1:] {
			final.union(g[0], x)
		}
	}
	bySuccessor(final, preds, nexts)
	a.router = map[netip.Addr]netip.Addr{}
	for x := range final {
		r := final.find(x)
		if cur, ok := a.router[r]; !ok || x.Less(cur) {
			a.router[r] = x
		}
	}
	for x := range final {
		a.router[x] = a.router[final.find(x)]
	}
}

func addTo[K comparable](m map[K]map[netip.Addr]bool, k K, x netip.Addr) {
	if m[k] == nil {
		m[k] = map[netip.Addr]bool{}
	}
	m[k][x] = true
}

// bySuccessor joins in final the addresses at one TTL that lead to the
// same next address (preds: the answering addresses before each one),
// unless one node leads to two of them (nexts: the answering addresses
// after each node): then they are distinct routers behind a shared next
// hop.
func bySuccessor(final unionFind, preds map[netip.Addr]map[netip.Addr]bool, nexts map[string]map[netip.Addr]bool) {
	succ := unionFind{}
	for _, ps := range preds {
		keys := sortedAddrs(ps)
		for _, x := range keys[1:] {
			succ.union(keys[0], x)
		}
	}
	invalid := map[netip.Addr]bool{}
	for _, ns := range nexts {
		seen := map[netip.Addr]bool{}
		for x := range ns {
			if _, ok := succ[x]; !ok {
				continue
			}
			r := succ.find(x)
			if seen[r] {
				invalid[r] = true
			}
			seen[r] = true
		}
	}
	for x := range succ {
		if r := succ.find(x); !invalid[r] {
			final.union(x, r)
		}
	}
}

func (a *analysis) routerOf(x netip.Addr) netip.Addr {
	if r, ok := a.router[x]; ok {
		return r
	}
	return x
}

func sortedAddrs(set map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(set))
	for x := range set {
		out = append(out, x)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// after counts the healthy flows through node id by what follows it.
func (a *analysis) after(id string) (reach, cont int) {
	for _, o := range a.healthy[id] {
		p := a.paths[o.flow]
		if o.pos+1 >= len(p) {
			continue
		}
		if p[o.pos+1].reached {
			reach++
		} else {
			cont++
		}
	}
	return reach, cont
}

type fateKind int

const (
	fateUnknown fateKind = iota
	fateReturn
	fateForward // dies right after a node healthy flows cross and continue from
	fateOnly    // ends at a hop that no healthy flow crosses
	fateUnreach // a router answered destination unreachable
	fateLoop    // a routing loop
)

type fate struct {
	kind fateKind
	flow int
	pos  int        // the node in paths[flow] where the verdict points
	next netip.Addr // the other end of a loop
	why  string     // for unknown
	// detour: the flow crossed answering hops no healthy flow crosses
	// before getting as far as healthy flows (return only).
	detour []netip.Addr
}

func isUnreachable(h *TraceHop) bool {
	if h == nil || !h.Addr.IsValid() {
		return false
	}
	if h.Addr.Is4() || h.Addr.Is4In6() {
		return h.ICMPType == 3
	}
	return h.ICMPType == 1
}

// fateOf reads where failing flow i dies; the per-flow reading and the
// hypotheses both ask, so it is computed once.
func (a *analysis) fateOf(i int) fate {
	if f, ok := a.fated[i]; ok {
		return f
	}
	f := a.readFate(i)
	a.fated[i] = f
	return f
}

func (a *analysis) readFate(i int) fate {
	p := a.paths[i]
	f := fate{flow: i}
	if len(p) == 1 {
		f.why = "no hop was traced"
		return f
	}
	if p[len(p)-1].reached {
		f.why = "the destination answered a traced probe but no end-to-end probe"
		return f
	}
	t0, loop := lastAnswerOrLoop(p)
	switch {
	case loop:
		f.kind, f.pos, f.next = fateLoop, t0, p[t0+1].addr
		if !f.next.IsValid() {
			f.next = nextAnswer(p, t0)
		}
	case isUnreachable(p[t0].hop):
		f.kind, f.pos = fateUnreach, t0
	case t0 == 0:
		f.why = "no answer at any TTL while healthy flows get one at TTL 1"
		if len(a.healthy[p[1].id]) > 0 {
			f.why = "no answer at any TTL, behind first hops that are silent for healthy flows too"
		}
	case len(a.healthy[p[t0].id]) > 0:
		a.fateAfterShared(&f, p, t0)
	default:
		a.fateAfterOwn(&f, p, t0)
	}
	return f
}

// lastAnswerOrLoop is the position of a path's last answer, or, where an
// address answers again two or more TTLs after it first did (a routing
// loop), the position it first answered at.
func lastAnswerOrLoop(p []pnode) (pos int, loop bool) {
	first := map[netip.Addr]int{}
	t0 := 0
	for pos, n := range p {
		if !n.answered() {
			continue
		}
		t0 = pos
		if j, ok := first[n.addr]; ok && pos >= j+2 {
			return j, true
		} else if !ok {
			first[n.addr] = pos
		}
	}
	return t0, false
}

// fateAfterShared reads a flow whose last answer, at t0, is a node healthy
// flows cross: where they go on after it and it does not.
func (a *analysis) fateAfterShared(f *fate, p []pnode, t0 int) {
	// The silent stretch after t0 that healthy flows share (liberal), and
	// its part that looks like silent routers rather than lost answers
	// (conservative).
	lib := a.sharedStretch(p, t0)
	cons := t0
	for q := t0 + 1; q <= lib && a.structural(p[q-1].id, p[q].id); q++ {
		cons = q
	}
	f.pos = cons
	switch reach, cont := a.after(p[cons].id); {
	case reach > 0 && cont == 0:
		f.kind = fateReturn
		f.detour = a.detour(p, cons)
	case cont > 0 && reach == 0:
		f.kind, f.pos = fateForward, a.deathPos(p, t0, lib, cons)
	case cont > 0:
		f.why = "healthy flows through its last hop disagree on how far the destination is"
	default:
		f.why = "no healthy flow through its last hop was traced further"
	}
}

// fateAfterOwn reads a flow whose last answer, at t0, is an address no
// healthy flow crosses: its depth against the healthy flows' through the
// deepest node it shares with them.
func (a *analysis) fateAfterOwn(f *fate, p []pnode, t0 int) {
	s := t0 - 1
	for s > 0 && len(a.healthy[p[s].id]) == 0 {
		s--
	}
	eq, ne := 0, 0
	for _, o := range a.healthy[p[s].id] {
		hp := a.paths[o.flow]
		if !hp[len(hp)-1].reached {
			continue
		}
		if len(hp)-1-o.pos == t0-s+1 {
			eq++
		} else {
			ne++
		}
	}
	f.pos = t0
	switch {
	case eq > 0 && ne == 0:
		f.kind = fateReturn
		f.detour = a.detour(p, t0)
	case eq == 0:
		f.kind = fateOnly
	default:
		f.why = "healthy flows disagree on how far the destination is"
	}
}

// sharedStretch is the last node after position from, in one unbroken
// stretch, that healthy flows share.
func (a *analysis) sharedStretch(p []pnode, from int) int {
	last := from
	for q := from + 1; q < len(p) && len(a.healthy[p[q].id]) > 0; q++ {
		last = q
	}
	return last
}

// detour lists the answering hops up to pos that no healthy flow crosses.
func (a *analysis) detour(p []pnode, pos int) []netip.Addr {
	var out []netip.Addr
	for _, n := range p[1 : pos+1] {
		if n.answered() && len(a.healthy[n.id]) == 0 {
			out = append(out, n.addr)
		}
	}
	return out
}

func nextAnswer(p []pnode, pos int) netip.Addr {
	for _, n := range p[pos+1:] {
		if n.answered() {
			return n.addr
		}
	}
	return netip.Addr{}
}

// Diagnose says where the failing flows of a trace die; see the comment at
// the top of this file for the rules. It is pure and deterministic: the
// order of flows does not matter.
func Diagnose(flows []FlowTrace) Diagnosis { return DiagnoseSample(flows, Sample{}) }

// DiagnoseSample is Diagnose for flows picked from a sweep by state (see
// Sample).
func DiagnoseSample(flows []FlowTrace, sample Sample) Diagnosis {
	return diagnose(flows, sample)
}

func diagnose(flows []FlowTrace, sample Sample) Diagnosis {
	a := newAnalysisWith(flows, sample.OneRouter)
	a.watched = sample.Arrived != nil
	n := a.count()
	if d, done := a.trivial(n); done {
		d.SharedIPID = a.sharedIPID
		return d
	}
	f := a.fates()
	// Decided on the ranking by score; then the one that names the most
	// of those pointing at the same place goes first.
	hs := a.hypotheses(sample)
	d := Diagnosis{Hypotheses: namedFirst(hs), SharedIPID: a.sharedIPID}
	v := decide(hs, a.directionNeed())
	d.Direction, d.Margin, d.Separate, a.rival = v.direction, v.margin, v.separate, v.rival
	d.Look = a.look(hs)
	tentative := a.tentative
	if d.Direction != DirectionReturn {
		tentative = nil
	}
	d.Suspects = a.suspectsOf(d.Hypotheses, a.suspectInfos(f.fwd), tentative)
	d.Text = a.verdictText(d, n, f) + a.arrivalText(sample.Arrived)
	if tentative != nil {
		d.Text += "; " + tentativeText(*tentative)
	}
	return d
}

// stateCounts counts the flows by end-to-end state.
type stateCounts struct{ healthy, failing, flaky int }

func (a *analysis) count() stateCounts {
	var n stateCounts
	for _, f := range a.flows {
		switch f.State {
		case hash.StateOK:
			n.healthy++
		case hash.StateFail:
			n.failing++
		case hash.StateFlaky:
			n.flaky++
		}
	}
	return n
}

// trivial is the diagnosis when there is nothing to weigh: no flow, no
// failing flow, or no healthy one to compare with.
func (a *analysis) trivial(n stateCounts) (Diagnosis, bool) {
	d := Diagnosis{Suspects: []Suspect{}}
	switch {
	case len(a.flows) == 0:
		d.Direction, d.Text = DirectionUnknown, "no flow was traced"
	case n.failing == 0:
		d.Direction, d.Text = DirectionNone, a.noneText(n.healthy, n.flaky)
	case n.healthy == 0:
		d.Direction = DirectionUnknown
		d.Text = fmt.Sprintf("%d of %d flows fail and none answered every probe: no healthy path to compare with", n.failing, len(a.flows))
		if n.flaky > 0 {
			d.Text += fmt.Sprintf(" (%d flaky)", n.flaky)
		}
	default:
		return d, false
	}
	return d, true
}

// flowFates is the per-flow reading of the failing flows, by kind: the
// evidence the text and the suspects quote.
type flowFates struct {
	fwd, ret, unk []fate
	spread        []spreadGroup // forward-dying flows spread over a stage (spread.go)
	early         []fate        // the other forward-dying flows
}

func (a *analysis) fates() flowFates {
	var f flowFates
	for i, fl := range a.flows {
		if fl.State != hash.StateFail {
			continue
		}
		switch ft := a.fateOf(i); ft.kind {
		case fateReturn:
			f.ret = append(f.ret, ft)
		case fateUnknown:
			f.unk = append(f.unk, ft)
		default:
			f.fwd = append(f.fwd, ft)
		}
	}
	f.spread, f.early = a.spreadReturn(f.fwd)
	return f
}

// suspectInfo is a suspect with what the text needs to describe it.
type suspectInfo struct {
	Suspect
	kind   fateKind
	ttl    int
	silent bool // Addr is the last answer before the silent node D
	alts   int  // other candidates for Next
}

// suspectInfos groups forward deaths by where they happen and ranks them.
func (a *analysis) suspectInfos(fwd []fate) []suspectInfo {
	type group struct {
		key   string
		fates []fate
	}
	groups := map[string]*group{}
	var keys []string
	for _, f := range fwd {
		n := a.paths[f.flow][f.pos]
		key := strconv.Itoa(int(f.kind)) + " " + n.id
		if f.kind == fateLoop {
			key += " " + f.next.String()
		}
		g, ok := groups[key]
		if !ok {
			g = &group{key: key}
			groups[key] = g
			keys = append(keys, key)
		}
		g.fates = append(g.fates, f)
	}
	var out []suspectInfo
	for _, k := range keys {
		g := groups[k]
		f := g.fates[0]
		n := a.paths[f.flow][f.pos]
		cnt := len(g.fates)
		s := suspectInfo{kind: f.kind, ttl: n.ttl}
		s.Score, s.Direction = cnt, DirectionForward
		switch f.kind {
		case fateForward:
			s.Addr = n.addr
			if !n.answered() {
				s.Addr, s.silent = n.last, true
			}
			if !s.Addr.IsValid() {
				// Silent from the first hop on: nothing to name.
				continue
			}
			ni := a.nextOf(n)
			s.Next, s.Evidence = describeNext(n, ni, cnt)
			s.alts = max(len(ni.cands)-1, 0)
		case fateOnly:
			s.Addr = n.addr
			s.Evidence = fmt.Sprintf("%d failing %s at %s (TTL %d), which no healthy flow crosses, and never get further",
				cnt, plural(cnt, "flow ends", "flows end"), n.addr, n.ttl)
		case fateUnreach:
			s.Addr = n.addr
			s.Evidence = fmt.Sprintf("%s answers %d failing %s with destination unreachable (ICMP type %d code %d) at TTL %d",
				n.addr, cnt, plural(cnt, "flow", "flows"), n.hop.ICMPType, n.hop.ICMPCode, n.ttl)
		case fateLoop:
			s.Addr, s.Next = n.addr, f.next
			s.Evidence = fmt.Sprintf("routing loop: %d failing %s answer from %s at several TTLs (first at TTL %d), bouncing via %s",
				cnt, plural(cnt, "flow", "flows"), n.addr, n.ttl, addrOrStar(f.next))
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y suspectInfo) int {
		return cmp.Or(cmp.Compare(y.Score, x.Score),
			cmp.Compare(boolInt(!x.Next.IsValid()), boolInt(!y.Next.IsValid())),
			cmp.Compare(x.ttl, y.ttl), x.Addr.Compare(y.Addr), x.Next.Compare(y.Next),
			cmp.Compare(x.Evidence, y.Evidence))
	})
	return out
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nextCand is a router that the failing flows dying after a node may have
// been unable to reach.
type nextCand struct {
	rep   netip.Addr   // its address seen on the most healthy flows
	addrs []netip.Addr // all of its addresses, rep first
	flows int          // healthy flows reaching it at the next TTL via other nodes
}

// nextInfo is what is known about the hop after a node.
type nextInfo struct {
	healthyThrough int          // healthy flows through the node
	healthyNext    int          // of them, those whose next hop answered
	healthyAfter   []netip.Addr // addresses healthy flows reach right after it
	cands          []nextCand   // best first; empty when none can be named
	width          int          // the routers seen after it and the candidates: the stage it hashes over
	why            string       // why none can be named
}

// nextOf looks for the router that flows dying after node d should have
// reached: one that healthy flows reach at the next TTL through other nodes,
// but that no flow reaches after d.
func (a *analysis) nextOf(d pnode) *nextInfo {
	key := strconv.Itoa(d.ttl) + " " + d.id
	if ni, ok := a.nexts[key]; ok {
		return ni
	}
	ni := &nextInfo{}
	a.nexts[key] = ni
	t := d.ttl
	afterD := a.countAfter(d, ni)
	preds, flowsVia := a.reachedElsewhere(d)
	if len(preds) == 0 {
		ni.why = fmt.Sprintf("no other answering hop at TTL %d to compare with", t)
		return ni
	}
	comparable := false
	for r := range afterD {
		if len(preds[r]) > 0 {
			comparable = true
		}
	}
	if !comparable {
		ni.why = fmt.Sprintf("next hops at TTL %d answer from per-link addresses, so the missing one cannot be named", t+1)
		return ni
	}
	for r, via := range flowsVia {
		if afterD[r] {
			continue
		}
		c := nextCand{}
		for x, n := range via {
			c.flows += n
			c.addrs = append(c.addrs, x)
		}
		slices.SortFunc(c.addrs, func(x, y netip.Addr) int { return cmp.Or(cmp.Compare(via[y], via[x]), x.Compare(y)) })
		c.rep = c.addrs[0]
		ni.cands = append(ni.cands, c)
	}
	if len(ni.cands) == 0 {
		ni.why = fmt.Sprintf("every router seen at TTL %d is also reached from it", t+1)
		return ni
	}
	// The most used candidate first: it is the one whose absence after d is
	// least likely to be chance, which leaves the rarer ones as unsampled.
	slices.SortFunc(ni.cands, func(x, y nextCand) int { return cmp.Or(cmp.Compare(y.flows, x.flows), x.rep.Compare(y.rep)) })
	ni.width = len(afterD) + len(ni.cands)
	return ni
}

// countAfter counts into ni the healthy flows through node d and the
// addresses they answer from right after it, and returns the routers any
// flow reaches right after d.
func (a *analysis) countAfter(d pnode, ni *nextInfo) map[netip.Addr]bool {
	afterD := map[netip.Addr]bool{}
	healthyAfter := map[netip.Addr]bool{}
	for _, o := range a.all[d.id] {
		p := a.paths[o.flow]
		if a.flows[o.flow].State == hash.StateOK {
			ni.healthyThrough++
		}
		if o.pos+1 >= len(p) || !p[o.pos+1].answered() {
			continue
		}
		afterD[a.routerOf(p[o.pos+1].addr)] = true
		if a.flows[o.flow].State == hash.StateOK {
			healthyAfter[p[o.pos+1].addr] = true
			ni.healthyNext++
		}
	}
	ni.healthyAfter = sortedAddrs(healthyAfter)
	return afterD
}

// reachedElsewhere is the routers at the TTL after node d's that healthy
// flows reach from other routers at d's TTL: their predecessors, and the
// healthy flows by the address each answers from. Only answering ones
// count: a silence may hide d's own router, or one whose next hops answer
// from per-link addresses.
func (a *analysis) reachedElsewhere(d pnode) (preds map[netip.Addr]map[netip.Addr]bool, flowsVia map[netip.Addr]map[netip.Addr]int) {
	t := d.ttl
	var self netip.Addr
	if d.answered() {
		self = a.routerOf(d.addr)
	}
	preds, flowsVia = map[netip.Addr]map[netip.Addr]bool{}, map[netip.Addr]map[netip.Addr]int{}
	for i, p := range a.paths {
		if a.flows[i].State != hash.StateOK || t+1 >= len(p) || !p[t].answered() || !p[t+1].answered() {
			continue
		}
		from := a.routerOf(p[t].addr)
		if p[t].id == d.id || from == self {
			continue
		}
		r := a.routerOf(p[t+1].addr)
		if preds[r] == nil {
			preds[r], flowsVia[r] = map[netip.Addr]bool{}, map[netip.Addr]int{}
		}
		preds[r][from] = true
		flowsVia[r][p[t+1].addr]++
	}
	return preds, flowsVia
}

// structural reports whether failing flows cross the silence s after node
// prev as healthy flows do, so that it is a silent router, or answers lost
// on their way back, that has nothing to do with their failure: among the
// failing flows through prev, no more reach s than the healthy flows'
// share predicts (the top of its 95% Wilson interval, plus two standard
// deviations and one). When failing flows go silent there much more often,
// their failure is what silenced them: they died right after prev.
func (a *analysis) structural(prev, s string) bool {
	key := prev + " " + s
	if v, ok := a.silence[key]; ok {
		return v
	}
	var hTotal, hS, fTotal, fS int
	for _, o := range a.all[prev] {
		p := a.paths[o.flow]
		if o.pos+1 >= len(p) {
			continue
		}
		at := p[o.pos+1].id == s
		switch a.flows[o.flow].State {
		case hash.StateOK:
			hTotal++
			if at {
				hS++
			}
		case hash.StateFail:
			fTotal++
			if at {
				fS++
			}
		}
	}
	v := false
	if hS > 0 {
		// The healthy share is itself uncertain with few flows: take the
		// top of its 95% interval.
		_, rho := hash.Wilson(hS, hTotal, 1.96)
		expect := float64(fTotal) * rho
		v = float64(fS) <= expect+2*math.Sqrt(expect*(1-rho))+1
	}
	a.silence[key] = v
	return v
}

// deathPos picks where on p[t0..lib] (an answering hop, then silence that
// healthy flows share) a failing flow is taken to have died, among the
// nodes after which healthy flows go on to another router: the deepest
// node after which exactly one missing router can be named, else the one
// with the fewest such candidates, else cons (the end of the stretch that
// looks like silent routers). Healthy flows may share a silence only
// because a router's answer was lost on its way back, so a deeper node is
// not always the better explanation.
func (a *analysis) deathPos(p []pnode, t0, lib, cons int) int {
	best, bestN := cons, 0
	for q := lib; q >= t0; q-- {
		if reach, cont := a.after(p[q].id); reach > 0 || cont == 0 {
			continue
		}
		n := len(a.nextOf(p[q]).cands)
		switch {
		case n == 1:
			return q
		case n > 0 && (bestN == 0 || n < bestN):
			best, bestN = q, n
		}
	}
	return best
}
