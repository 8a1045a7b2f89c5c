package report

// The prose of the per-flow reading (diagnose.go, spread.go): the evidence
// strings and the verdict's clauses. Nothing here decides anything.

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/ecmpscan/ecmpscan/hash"
)

func whyText(unk []fate) string {
	count := map[string]int{}
	for _, f := range unk {
		count[f.why]++
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y string) int { return cmp.Or(cmp.Compare(count[y], count[x]), cmp.Compare(x, y)) })
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d: %s", count[k], k)
	}
	return strings.Join(parts, "; ")
}

func (a *analysis) noneText(healthy, flaky int) string {
	silent := 0
	for id, occs := range a.healthy {
		if strings.HasPrefix(id, "*") && len(occs) > 0 {
			silent++
		}
	}
	var text string
	if flaky > 0 {
		text = fmt.Sprintf("no flow fails on every probe; %d of %d %s lost some probes: partial loss, not a dead path (per-path loss is in the paths)",
			flaky, len(a.flows), plural(len(a.flows), "flow", "flows"))
	} else {
		text = fmt.Sprintf("all %d %s answered every probe", healthy, plural(healthy, "flow", "flows"))
	}
	if silent > 0 {
		text += `; silent hops ("*") are routers that send no time-exceeded, not loss`
	}
	return text
}

// destination is the address that answered as the destination most often.
func (a *analysis) destination() string {
	count := map[netip.Addr]int{}
	for _, p := range a.paths {
		if n := p[len(p)-1]; n.reached && n.addr.IsValid() {
			count[n.addr]++
		}
	}
	var best netip.Addr
	for x, c := range count {
		if !best.IsValid() || c > count[best] || (c == count[best] && x.Less(best)) {
			best = x
		}
	}
	if !best.IsValid() {
		return "the destination"
	}
	return best.String()
}

// returnText says where the failing flows that got as far as healthy ones
// stop; decided is false where the diagnosis is unknown, and a rival
// beyond the last hop that answers (an unseen member there) explains them
// as well: then the forward path is not exonerated, and it does not say
// so. With others, other failing flows went silent sooner: only these
// flows' forward path is exonerated.
func (a *analysis) returnText(ret []fate, decided, others bool) string {
	ttls := map[int]int{}
	silentLast := false
	detour := map[netip.Addr]bool{}
	for _, f := range ret {
		n := a.paths[f.flow][f.pos]
		ttls[n.ttl]++
		if !n.answered() {
			silentLast = true
		}
		for _, x := range f.detour {
			detour[x] = true
		}
	}
	ttl := 0
	for t, c := range ttls {
		if ttl == 0 || c > ttls[ttl] || (c == ttls[ttl] && t < ttl) {
			ttl = t
		}
	}
	sport := a.flows[ret[0].flow].Sport
	whose := "the"
	if others {
		whose = "their"
	}
	verdict := whose + " forward path is exonerated; the fault is on the way back, where routers hash the reverse five-tuple"
	if !decided {
		verdict = "lost on the way back, where routers hash the reverse five-tuple, or beyond the last hop that answers"
	}
	text := fmt.Sprintf("%d failing %s as far as healthy flows do (to TTL %d, the hop before %s) but never the destination's answer: %s",
		len(ret), plural(len(ret), "flow gets", "flows get"), ttl, a.destination(), verdict)
	text += a.localizeText(sport)
	if silentLast {
		text += " (the last hop before the destination sends no time-exceeded, so a drop in that hop cannot be excluded)"
	}
	if len(detour) > 0 {
		text += fmt.Sprintf(" (failing flows also cross %s, which no healthy flow answers from; they go on after it, so it is not where they die)",
			addrList(sortedAddrs(detour), 4))
	}
	return text
}

// earlyText says what a return verdict leaves open: failing flows that
// went silent before getting as far as healthy flows, which the return
// fault explains only as silences like the healthy flows' own (a fault on
// their way out, a link dead both ways, is not ruled out for them). ""
// when none went silent (an unreachable or a loop is no silence).
func (a *analysis) earlyText(early []fate) string {
	ttls, n := map[int]bool{}, 0
	for _, f := range early {
		if f.kind == fateForward {
			ttls[a.paths[f.flow][f.pos].ttl+1] = true
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d failing %s silent sooner (from TTL %s): the return fault explains %s only as missed answers, "+
		"so a fault on %s way out is not ruled out",
		n, plural(n, "flow goes", "flows go"), ttlsAnd(slices.Sorted(maps.Keys(ttls))), plural(n, "it", "them"), plural(n, "its", "their"))
}

func addrList(xs []netip.Addr, limit int) string {
	parts := make([]string, 0, len(xs))
	for i, x := range xs {
		if i == limit {
			parts = append(parts, fmt.Sprintf("%d more", len(xs)-limit))
			break
		}
		parts = append(parts, x.String())
	}
	return joinAnd(parts)
}

func joinAnd(parts []string) string {
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return parts[0]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

func addrOrStar(x netip.Addr) string {
	if !x.IsValid() {
		return "*"
	}
	return x.String()
}

// describeNext names the next hop of a death after d and says why.
func describeNext(d pnode, ni *nextInfo, failing int) (netip.Addr, string) {
	t := d.ttl
	cont := "other hops"
	if len(ni.healthyAfter) > 0 {
		cont = addrList(ni.healthyAfter, 6)
	}
	head := fmt.Sprintf("%d failing %s after %s (TTL %d); %d healthy %s through it continue to %s",
		failing, plural(failing, "flow dies", "flows die"), d.addr, t, ni.healthyThrough, plural(ni.healthyThrough, "flow", "flows"), cont)
	if !d.answered() {
		head = fmt.Sprintf("%d failing %s after %s, at or right after the silent hop at TTL %d; %d healthy %s cross that silent hop and continue to %s",
			failing, plural(failing, "flow dies", "flows die"), addrOrClient(d.last), t, ni.healthyThrough, plural(ni.healthyThrough, "flow", "flows"), cont)
	}
	if len(ni.cands) == 0 {
		return netip.Addr{}, head + fmt.Sprintf(": the next hop the failing flows take never answers (a silent member or a blackhole; %s)", ni.why)
	}
	c := ni.cands[0]
	name := c.rep.String()
	if len(c.addrs) > 1 {
		name += " (also seen as " + addrList(c.addrs[1:], 4) + ")"
	}
	it := d.addr.String()
	if !d.answered() {
		it = "that silent hop"
	}
	ev := head + fmt.Sprintf("; %s is reached at TTL %d by %d healthy %s via other hops but never after %s",
		name, t+1, c.flows, plural(c.flows, "flow", "flows"), it)
	if !d.answered() {
		ev += fmt.Sprintf(": the link from the silent hop at TTL %d behind %s to %s", t, addrOrClient(d.last), c.rep)
	}
	if len(ni.cands) > 1 {
		others := make([]netip.Addr, 0, len(ni.cands)-1)
		for _, o := range ni.cands[1:] {
			others = append(others, o.rep)
		}
		ev += "; other candidates: " + addrList(others, 4)
	}
	return c.rep, ev
}

// spreadText says what the spread groups show.
func (a *analysis) spreadText(groups []spreadGroup) string {
	n := 0
	for _, g := range groups {
		n += len(g.flows)
	}
	g := groups[0]
	ttl := a.paths[g.flows[0]][g.pos].ttl + 1
	return fmt.Sprintf("%d failing %s silent at TTL %d after %d different routers (%s), split among them like the healthy flows (p = %.2f), "+
		"where every healthy flow goes on to %s: no single forward hop or link fails the flows of every member, so the fault is on the way back "+
		"(these routers send their time-exceeded messages along the flow's return path, and those are lost with it)",
		n-g.atSilent, plural(n-g.atSilent, "flow goes", "flows go"), ttl, len(g.members), addrList(g.members, 4), g.p, g.behind) +
		a.localizeText(a.flows[g.flows[0]].Sport) + a.atSilentText(groups)
}

// localizeText tells how to localize a return fault, unless a responder
// at the target traces the return paths itself.
func (a *analysis) localizeText(sport uint16) string {
	if a.watched {
		return ""
	}
	return fmt.Sprintf(". To localize it, trace from the server side toward the client with the reversed tuple: "+
		"ecmpscan trace CLIENT:%d --sport DPORT, or run `ecmpscan responder` there and trace --responder", sport)
}

func (a *analysis) atSilentText(groups []spreadGroup) string {
	n := 0
	for _, g := range groups {
		n += g.atSilent
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d more %s silent at a hop that is silent for healthy flows too, which go on after it: "+
		"a router that forwards toward the server but sends nothing back, as the bad return member would", n, plural(n, "flow goes", "flows go"))
}

// verdictText is the diagnosis in words: the best hypothesis and how sure,
// then what the per-flow reading adds.
func (a *analysis) verdictText(d Diagnosis, n stateCounts, f flowFates) string {
	var parts []string
	unk := f.unk
	switch {
	case len(d.Hypotheses) == 0:
		why := whyText(unk)
		if why == "" {
			why = "no fault explains them better than the background loss does"
		}
		parts = append(parts, fmt.Sprintf("cannot tell where %d failing %s: %s", n.failing, plural(n.failing, "flow dies", "flows die"), why))
		unk = nil
	case d.Direction == DirectionReturn || d.Direction == DirectionUnknown:
		parts = append(parts, a.hypothesisText(d))
		if len(f.spread) > 0 {
			parts = append(parts, a.spreadText(f.spread))
		}
		if len(f.ret) > 0 {
			parts = append(parts, a.returnText(f.ret, d.Direction == DirectionReturn, len(f.early) > 0))
		}
		if early := a.earlyText(f.early); early != "" && d.Direction == DirectionReturn {
			parts = append(parts, early)
		}
	default:
		parts = append(parts, a.hypothesisText(d))
	}
	text := strings.Join(parts, "; ")
	if len(unk) > 0 {
		text += fmt.Sprintf("; %d undecided (%s)", len(unk), whyText(unk))
	}
	if n.flaky > 0 {
		text += fmt.Sprintf("; %d flaky %s lost some probes (partial loss, see the paths)", n.flaky, plural(n.flaky, "flow", "flows"))
	}
	return text
}

// arrivalText says what the responder saw of the failing flows.
func (a *analysis) arrivalText(arrived map[uint16]bool) string {
	if arrived == nil {
		return ""
	}
	in, out := 0, 0
	for _, f := range a.flows {
		if got, known := arrived[f.Sport]; known && f.State == hash.StateFail {
			if got {
				in++
			} else {
				out++
			}
		}
	}
	return fmt.Sprintf("; two-ended: the responder saw the SYNs of %d failing %s arrive and of %d not", in, plural(in, "flow", "flows"), out)
}
