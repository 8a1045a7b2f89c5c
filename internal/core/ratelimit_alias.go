package core

import (
	"net/netip"
	"slices"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// limitWait is how long a round waits between the checked addresses'
// controls and the drain: a budget that earns a token a second (Linux's),
// or faster, has one again by then.
const limitWait = 1500 * time.Millisecond

// limitRepeat numbers the rate-limit test's probes apart from the trace's,
// the retries' and the second look's.
const limitRepeat = lookRepeat + 1024

// rateLimitTest runs the rate-limit alias test (report/ratelimit_alias.go)
// where the diagnosis cannot decide: stage by stage, the rounds each
// stage asks for, until the rounds run out, or until a round's new groups
// let decided say yes. It returns nil where no two addresses answered
// at the TTLs in question.
func (t *tracer) rateLimitTest(tr report.Trace, decided func(*report.RateLimitTest) bool) (*report.RateLimitTest, bool, error) {
	stages := report.RateLimitStages(tr)
	if len(stages) == 0 {
		return nil, false, nil
	}
	var rounds []report.RateLimitRound
	for _, st := range stages {
		for inStage := 0; inStage < report.MaxStageRounds && len(rounds) < report.MaxRateLimitRounds; inStage++ {
			pivot, checks, ok := st.NextRound(rounds)
			if !ok {
				break
			}
			before := report.JudgeRateLimit(rounds)
			r, interrupted, err := t.limitRound(tr, st, pivot, checks)
			if err != nil || interrupted {
				return before, interrupted, err
			}
			rounds = append(rounds, r)
			if found := report.JudgeRateLimit(rounds); !slices.EqualFunc(found.Groups, before.Groups, slices.Equal) && decided(found) {
				return found, false, nil
			}
		}
	}
	return report.JudgeRateLimit(rounds), false, nil
}

// limitRound probes each checked address's flow once (its control), waits
// limitWait, then sends the drain on the pivot's flow and each checked
// flow once more right after, all expiring at the stage's TTL.
func (t *tracer) limitRound(tr report.Trace, st report.RateLimitStage, pivot int, checks []int) (report.RateLimitRound, bool, error) {
	round := report.RateLimitRound{TTL: st.TTL, Pivot: st.Addrs[pivot]}
	src, target := unzoned(tr.Source), tr.Target
	at := func(i, repeat int) probe.Probe {
		tuple := hash.FiveTuple{Src: src, Dst: target.Addr(), Proto: hash.ProtoTCP, SrcPort: st.Flows[i], DstPort: target.Port()}
		return probe.Probe{Kind: probe.KindTCPSYN, Tuple: tuple, Repeat: limitRepeat + repeat, TTL: uint8(st.TTL)}
	}
	c := &limitCollector{from: map[uint16]netip.Addr{}, answered: map[[2]int]bool{}}
	for i, a := range st.Addrs {
		c.from[st.Flows[i]] = a
	}
	answered := func(i, repeat int) bool { return c.answered[[2]int{int(st.Flows[i]), limitRepeat + repeat}] }
	start := t.env.clock().Now()
	var controls probe.List
	for _, j := range checks {
		controls = append(controls, at(j, 0))
	}
	if stopped, err := t.send(c, controls); err != nil || stopped {
		return round, stopped, err
	}
	if t.waitUntil(start.Add(limitWait)) {
		return round, true, nil
	}
	var drain probe.List
	for k := range report.RateLimitDrain {
		drain = append(drain, at(pivot, 1+k))
	}
	for _, j := range checks {
		drain = append(drain, at(j, 1+report.RateLimitDrain))
	}
	if stopped, err := t.send(c, drain); err != nil || stopped {
		return round, stopped, err
	}
	for k := range report.RateLimitDrain {
		round.Drain = append(round.Drain, answered(pivot, 1+k))
	}
	for _, j := range checks {
		round.Checks = append(round.Checks, report.RateLimitCheck{Addr: st.Addrs[j],
			Control: answered(j, 0), Then: answered(j, 1+report.RateLimitDrain)})
	}
	return round, false, nil
}

// waitUntil waits on the clock until deadline; true when interrupted.
func (t *tracer) waitUntil(deadline time.Time) bool {
	clock := t.env.clock()
	wait := deadline.Sub(clock.Now())
	if wait <= 0 {
		return false
	}
	tick, stop := clock.Ticker(wait)
	defer stop()
	select {
	case <-t.ctx.Done():
		return true
	case <-tick:
		return false
	}
}

// limitCollector keeps which of a round's probes were answered from the
// address their flow answered from before, by source port and repeat.
type limitCollector struct {
	from     map[uint16]netip.Addr
	answered map[[2]int]bool
}

var _ probe.Collector = (*limitCollector)(nil)

func (c *limitCollector) Collect(r probe.Result) {
	if r.Outcome == probe.Unreachable && r.From == c.from[r.Tuple.SrcPort] {
		c.answered[[2]int{int(r.Tuple.SrcPort), r.Repeat}] = true
	}
}

// A late answer is an answer all the same: the router had a token, so its
// probe shows no spent budget (which errs toward proving nothing, for the
// drain and for the checked addresses alike).
func (c *limitCollector) Late(p probe.Probe) {
	c.answered[[2]int{int(p.Tuple.SrcPort), p.Repeat}] = true
}
