package core

import (
	"cmp"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// collector folds results into per-flow aggregates as the engine hands
// them over, so a run keeps nothing per probe: TCP and echo flows apart,
// TTL-limited probes into hops, and the target's distance from the TTL of
// its answers.
type collector struct {
	tcp, echo *hash.Bucketer[uint16]
	hops      *report.Hops
	hopsAway  int
}

var _ probe.Collector = (*collector)(nil)

func newCollector() *collector {
	return &collector{tcp: hash.BySourcePort(), echo: hash.BySourcePort(), hops: report.NewHops()}
}

func (c *collector) Collect(r probe.Result) {
	switch {
	case r.TTL > 0:
		c.hops.Add(r)
	case r.Kind == probe.KindICMPEcho:
		c.echo.Add(r.Observation())
	default:
		c.tcp.Add(r.Observation())
		if r.Outcome == probe.Answered {
			c.hopsAway = max(c.hopsAway, report.HopsAway(r.ReplyTTL))
		}
	}
}

func (c *collector) Late(p probe.Probe) {
	switch {
	case p.TTL > 0:
	case p.Kind == probe.KindICMPEcho:
		c.echo.AddLate(p.Tuple)
	default:
		c.tcp.AddLate(p.Tuple)
	}
}

// sendFailures lists the engine's send failures, most frequent first.
func sendFailures(st probe.Stats) []report.SendFailure {
	var out []report.SendFailure
	for c, f := range st.SendFailures {
		out = append(out, report.SendFailure{Cause: string(c), Count: f.Count, Example: f.Example})
	}
	slices.SortFunc(out, func(a, b report.SendFailure) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Cause, b.Cause))
	})
	return out
}

// measured keeps the flows at least one of whose probes left the host.
func measured(stats []hash.FlowStats) []hash.FlowStats {
	var out []hash.FlowStats
	for _, s := range stats {
		if s.Sent > 0 {
			out = append(out, s)
		}
	}
	return out
}
