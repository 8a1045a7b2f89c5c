package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ecmpscan/ecmpscan/hash"
)

// The DOT rendering of a trace (Graphviz): one node per hop address (a
// silent hop is its own node, by where it sits), edges counted by the
// flows that took them, the suspects in red.

type dotNode struct {
	id               string
	ttls             map[int]bool
	silent           bool
	fail, ok, flaky  int
	minTTL           int
	addr             netip.Addr
	isSource, isDest bool
}

type dotEdge struct {
	from, to       string
	fail, ok, flky int
}

// unplaced is the TTL of a suspect's node no traced flow reached: after
// every other.
const unplaced = 1 << 30

// dotGraph is a trace's nodes and edges, as the flows took them.
type dotGraph struct {
	nodes        map[string]*dotNode
	edges        map[[2]string]*dotEdge
	suspectNodes map[string]bool
	suspectEdges [][3]string // from, to, label
}

func traceDOT(t Trace) string {
	g := &dotGraph{nodes: map[string]*dotNode{}, edges: map[[2]string]*dotEdge{}, suspectNodes: map[string]bool{}}
	g.node("source", 0).isSource = true
	for i := range t.Flows {
		g.addFlow(&t.Flows[i])
	}
	if _, ok := g.nodes["destination"]; !ok && t.Target.IsValid() {
		g.node("destination", t.MaxTTL+1).isDest = true
	}
	g.addSuspects(t.Diagnosis.Suspects)
	order := g.sorted()
	var b strings.Builder
	title := fmt.Sprintf("ecmpscan trace %s from %s: %s", t.Target, addrString(t.Source), t.Diagnosis.Direction)
	b.WriteString("digraph ecmpscan_trace {\n")
	fmt.Fprintf(&b, "  graph [rankdir=LR, labelloc=t, fontname=monospace, label=%s];\n", dotQuote(title))
	b.WriteString("  node [shape=box, fontname=monospace, fontsize=10];\n")
	b.WriteString("  edge [fontname=monospace, fontsize=9];\n")
	for _, n := range order {
		fmt.Fprintf(&b, "  %s [%s];\n", dotQuote(n.id), strings.Join(g.nodeAttrs(n, t), ", "))
	}
	g.writeEdges(&b, order)
	b.WriteString("}\n")
	return b.String()
}

func (g *dotGraph) node(id string, ttl int) *dotNode {
	n, ok := g.nodes[id]
	if !ok {
		n = &dotNode{id: id, ttls: map[int]bool{}, minTTL: ttl}
		g.nodes[id] = n
	}
	n.ttls[ttl] = true
	n.minTTL = min(n.minTTL, ttl)
	return n
}

func tallyState(st hash.State, fail, ok, flaky *int) {
	switch st {
	case hash.StateFail:
		*fail++
	case hash.StateOK:
		*ok++
	case hash.StateFlaky:
		*flaky++
	}
}

// addFlow adds a flow's hops and the edges between them.
func (g *dotGraph) addFlow(f *FlowTrace) {
	prev := "source"
	for _, pn := range tracePath(f)[1:] {
		id := pn.id
		if pn.reached {
			id = "destination"
		}
		n := g.node(id, pn.ttl)
		n.silent, n.addr, n.isDest = !pn.addr.IsValid(), pn.addr, pn.reached
		tallyState(f.State, &n.fail, &n.ok, &n.flaky)
		e, ok := g.edges[[2]string{prev, id}]
		if !ok {
			e = &dotEdge{from: prev, to: id}
			g.edges[[2]string{prev, id}] = e
		}
		tallyState(f.State, &e.fail, &e.ok, &e.flky)
		prev = id
	}
}

// addSuspects marks the suspects' routers and links, adding the ones no
// traced flow reached.
func (g *dotGraph) addSuspects(suspects []Suspect) {
	mark := func(a netip.Addr) string {
		id := a.String()
		if _, ok := g.nodes[id]; !ok {
			g.node(id, unplaced).addr = a
		}
		g.suspectNodes[id] = true
		return id
	}
	for i, s := range suspects {
		if !s.Addr.IsValid() {
			continue
		}
		a := mark(s.Addr)
		if s.Next.IsValid() {
			g.suspectEdges = append(g.suspectEdges, [3]string{a, mark(s.Next), "suspect " + strconv.Itoa(i+1)})
		}
	}
}

// sorted orders the nodes by TTL, source first and destination last.
func (g *dotGraph) sorted() []*dotNode {
	order := make([]*dotNode, 0, len(g.nodes))
	for _, n := range g.nodes {
		order = append(order, n)
	}
	rank := func(n *dotNode) int {
		switch {
		case n.isSource:
			return 0
		case n.isDest:
			return 3
		case n.silent:
			return 2
		}
		return 1
	}
	slices.SortFunc(order, func(x, y *dotNode) int {
		xd, yd := boolInt(x.isDest), boolInt(y.isDest)
		return cmp.Or(cmp.Compare(xd, yd), cmp.Compare(x.minTTL, y.minTTL), cmp.Compare(rank(x), rank(y)),
			x.addr.Compare(y.addr), cmp.Compare(x.id, y.id))
	})
	return order
}

// nodeAttrs are a node's label and style: red where it is a suspect or
// only failing flows cross it.
func (g *dotGraph) nodeAttrs(n *dotNode, t Trace) []string {
	var attrs []string
	switch {
	case n.isSource:
		attrs = append(attrs, "shape=ellipse", "label="+dotQuote(addrString(t.Source)+"\nsource"))
	case n.isDest:
		label := "destination"
		if t.Target.IsValid() {
			label = t.Target.String() + "\ndestination"
		}
		attrs = append(attrs, "shape=ellipse", "label="+dotQuote(label))
	case n.silent:
		attrs = append(attrs, `label="*"`, "shape=circle", "width=0.3", "fixedsize=true", "style=filled",
			"fillcolor=lightgrey", "fontcolor=grey40",
			"tooltip="+dotQuote(fmt.Sprintf("no answer at TTL %s (%s)", ttlList(n.ttls), n.id)))
	default:
		label := n.addr.String()
		if len(n.ttls) > 0 && n.minTTL < unplaced {
			label += "\nTTL " + ttlList(n.ttls)
		}
		attrs = append(attrs, "label="+dotQuote(label))
	}
	switch {
	case g.suspectNodes[n.id]:
		attrs = append(attrs, "color=red", "fontcolor=red", "penwidth=3", "style=bold")
	case !n.isSource && !n.isDest && n.fail > 0 && n.ok+n.flaky == 0:
		attrs = append(attrs, "color=red")
	case n.silent:
		attrs = append(attrs, "color=grey")
	}
	return attrs
}

// writeEdges writes the flows' edges in node order, counted, then the
// suspect links.
func (g *dotGraph) writeEdges(b *strings.Builder, order []*dotNode) {
	elist := make([]*dotEdge, 0, len(g.edges))
	for _, e := range g.edges {
		elist = append(elist, e)
	}
	pos := map[string]int{}
	for i, n := range order {
		pos[n.id] = i
	}
	slices.SortFunc(elist, func(x, y *dotEdge) int {
		return cmp.Or(cmp.Compare(pos[x.from], pos[y.from]), cmp.Compare(pos[x.to], pos[y.to]))
	})
	for _, e := range elist {
		label := strconv.Itoa(e.fail + e.ok + e.flky)
		if e.fail > 0 {
			label += fmt.Sprintf(" (%d fail)", e.fail)
		}
		attrs := []string{"label=" + dotQuote(label)}
		if e.fail > 0 && e.ok+e.flky == 0 {
			attrs = append(attrs, "color=red", "fontcolor=red")
		}
		fmt.Fprintf(b, "  %s -> %s [%s];\n", dotQuote(e.from), dotQuote(e.to), strings.Join(attrs, ", "))
	}
	for _, s := range g.suspectEdges {
		fmt.Fprintf(b, "  %s -> %s [label=%s, color=red, fontcolor=red, penwidth=3, style=\"bold,dashed\", constraint=false];\n",
			dotQuote(s[0]), dotQuote(s[1]), dotQuote(s[2]))
	}
}

func dotQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `"`, `\"`)
	s = strings.ReplaceAll(s, "\n", `\n`)
	return `"` + s + `"`
}

func ttlList(ttls map[int]bool) string {
	keys := make([]int, 0, len(ttls))
	for k := range ttls {
		if k < unplaced {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strconv.Itoa(k)
	}
	return strings.Join(parts, ",")
}
