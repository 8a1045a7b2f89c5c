package core

import (
	"cmp"
	"maps"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// lookRepeat numbers the second look's probes at the look's TTL apart
// from the trace's and the retries' (which count up from HopProbes), so a
// late answer to one is never taken for another's.
const lookRepeat = probe.MaxRepeats / 2

// look takes the diagnosis's second look (report.Look): it probes every
// untraced flow at the look's TTL, traces hop by hop up to Flows of those
// that cross its place, spread over the range, and probes their
// rate-limited holes again. It counts the flows that gave no answer at
// that TTL apart: a rate-limited router there leaves most unseen, not
// elsewhere. It returns the traced flows with them, sorted by source
// port, and their retries.
func (t *tracer) look(c *collector, l report.Look, e2e []hash.Judged, maxTTL int) ([]hash.Judged, *report.Retried, bool, error) {
	if stopped, err := t.send(c, glimpse(t.rest, l.TTL, t.cfg.HopProbes, t.rng)); err != nil || stopped {
		return e2e, nil, stopped, err
	}
	crossing, rest, unseen := byPlace(t.rest, l, c.hops.Path)
	traced := spread(crossing, max(t.cfg.Flows, 1))
	picked := map[uint16]bool{}
	for _, j := range traced {
		picked[j.Tuple.SrcPort] = true
	}
	ports := slices.Sorted(maps.Keys(picked))
	left := slices.DeleteFunc(slices.Clone(crossing), func(j hash.Judged) bool { return picked[j.Tuple.SrcPort] })
	t.rest = append(rest, left...)
	t.looked = &report.Looked{Look: l, Untraced: countStates(left), Picked: len(traced), Unseen: new(countStates(unseen)), Ports: ports}
	if len(traced) == 0 {
		return e2e, nil, false, nil
	}
	// The traced flows join the trace before they are probed: cut short,
	// it shows what they got, and the counts still add up.
	e2e = append(slices.Clone(e2e), traced...)
	slices.SortFunc(e2e, func(a, b hash.Judged) int { return cmp.Compare(a.Tuple.SrcPort, b.Tuple.SrcPort) })
	tuples := make([]hash.FiveTuple, len(traced))
	for i, j := range traced {
		tuples[i] = j.Tuple
	}
	if stopped, err := t.send(c, probe.NewTraceRounds(tuples, maxTTL, t.cfg.HopProbes, t.rng)); err != nil || stopped {
		return e2e, nil, stopped, err
	}
	retried, stopped, err := t.retry(c, traced)
	return e2e, retried, stopped, err
}

// byPlace splits flows by what their paths showed at the look's TTL: those
// that answered from its place (crossing), and the rest, of which those
// that gave no answer there at all (unseen).
func byPlace(flows []hash.Judged, l report.Look, path func(sport uint16) []report.TraceHop) (crossing, rest, unseen []hash.Judged) {
	for _, j := range flows {
		switch p := path(j.Tuple.SrcPort); {
		case l.CrossedBy(p):
			crossing = append(crossing, j)
		case !l.SeenBy(p):
			unseen = append(unseen, j)
			rest = append(rest, j)
		default:
			rest = append(rest, j)
		}
	}
	return crossing, rest, unseen
}

// glimpse is the look's probes: every flow at one TTL, perHop times, the
// flows in a fresh order each time.
func glimpse(flows []hash.Judged, ttl, perHop int, rng interface{ Perm(int) []int }) probe.List {
	var out probe.List
	for rep := range max(perHop, 1) {
		for _, i := range rng.Perm(len(flows)) {
			out = append(out, probe.Probe{Kind: probe.KindTCPSYN, Tuple: flows[i].Tuple, Repeat: lookRepeat + rep, TTL: uint8(ttl)})
		}
	}
	return out
}

// send probes a source into c and counts it.
func (t *tracer) send(c probe.Collector, src probe.Source) (bool, error) {
	st, stopped, err := t.set.run(t.ctx, src, t.cfg.Probing, c, t.env)
	t.stats.Add(st)
	return stopped, err
}

// addRetried adds the second look's retries to the first pass's (nil
// when there were none).
func addRetried(a, b *report.Retried) *report.Retried {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	sum := *a
	for _, ttl := range b.TTLs {
		if !slices.Contains(sum.TTLs, ttl) {
			sum.TTLs = append(sum.TTLs, ttl)
		}
	}
	slices.Sort(sum.TTLs)
	sum.Holes += b.Holes
	sum.Rounds += b.Rounds
	sum.Probes += b.Probes
	sum.Answers += b.Answers
	return &sum
}
