package core

import (
	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

// DefaultTracedFlows is the CLI's and the exporter's TraceOptions.Flows.
// What decides a diagnosis is how many failing flows it sees: healthy ones
// beyond a few dozen add little (halving the healthy flows of the 1163
// recorded traces and weighing them back left as many right; halving all
// their flows turned 73 more wrong or unknown), so a trace classifies a
// wide range end to end, which costs a few probes a flow, and follows hop
// by hop the failing flows and healthy ones for contrast.
const DefaultTracedFlows = 32

// TracedBound is the most flows a trace of ports source ports follows hop
// by hop under o, before its second look.
func TracedBound(o TraceOptions, ports int) int {
	if o.Flows <= 0 {
		return ports
	}
	return min(ports, 2*o.Flows+flakyShare(o.Flows))
}

// HopProbes is the most TTL-limited probes a trace of ports source ports
// sends under o before probing rate-limited holes again: every TTL of the
// traced flows, and the second look (look.go): the untraced flows at one
// TTL, then every TTL of up to o.Flows of them.
func HopProbes(o TraceOptions, ports int) int {
	traced := TracedBound(o, ports)
	rest := ports - traced
	return (traced+min(o.Flows, rest))*o.MaxTTL*o.HopProbes + rest*o.HopProbes
}

// flakyShare is how many flaky flows are traced beside n failing ones.
func flakyShare(n int) int { return max(n/4, 1) }

// pickTraced picks the flows of judged to trace hop by hop: every failing
// one up to n, a quarter as many flaky ones, and healthy ones for contrast
// up to TracedBound in all (n at least: where fewer flows fail, more
// healthy ones are traced for the same cost), each spread evenly over the
// range; and the flows no probe of which left the host (never traced: the
// trace lists them as not probed). rest are the others.
// n <= 0 picks every flow.
func pickTraced(judged []hash.Judged, n int) (picked, rest []hash.Judged) {
	if n <= 0 {
		return judged, nil
	}
	byState := map[hash.State][]hash.Judged{}
	for _, j := range judged {
		byState[j.State] = append(byState[j.State], j)
	}
	keep := map[uint16]bool{}
	room := TracedBound(TraceOptions{Flows: n}, len(judged))
	for _, st := range []hash.State{hash.StateFail, hash.StateFlaky, hash.StateOK} {
		most := map[hash.State]int{hash.StateFail: n, hash.StateFlaky: flakyShare(n), hash.StateOK: room}[st]
		for _, j := range spread(byState[st], min(most, room)) {
			keep[j.Tuple.SrcPort] = true
			room--
		}
	}
	for _, j := range judged {
		if keep[j.Tuple.SrcPort] || j.State == hash.StateError {
			picked = append(picked, j)
		} else {
			rest = append(rest, j)
		}
	}
	return picked, rest
}

// countStates counts flows by state, for the untraced ones.
func countStates(flows []hash.Judged) report.Untraced {
	var u report.Untraced
	for _, j := range flows {
		switch j.State {
		case hash.StateOK:
			u.OK++
		case hash.StateFail:
			u.Fail++
		case hash.StateFlaky:
			u.Flaky++
		}
	}
	return u
}

// spread picks up to n of the list, evenly.
func spread[T any](list []T, n int) []T {
	if len(list) <= n {
		return list
	}
	out := make([]T, n)
	for i := range out {
		out[i] = list[i*len(list)/n]
	}
	return out
}
