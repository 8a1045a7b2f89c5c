package core

import (
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// aliasTest asks the addresses that answered the trace which of them are
// one router's (report/timestamp_alias.go), where the diagnosis cannot
// decide: one stage read as several routers or as one router's links is
// a tie only a router's own answer breaks. It returns nil where the test
// cannot run (IPv6, no two addresses at one TTL, no socket for it): the
// trace stands without it.
func (t *tracer) aliasTest(tr report.Trace) (*report.AliasTest, bool, error) {
	src := unzoned(tr.Source)
	pairs := report.AliasPairs(tr.Flows, tr.Target.Addr())
	if !src.Is4() || len(pairs) == 0 {
		return nil, false, nil
	}
	asked := make([]probe.AliasPair, len(pairs))
	for i, p := range pairs {
		asked[i] = probe.AliasPair{Addr: p[0], Ask: p[1]}
	}
	pr, err := t.env.Probers.Alias(src, asked)
	if err != nil {
		t.env.notice("alias test not run: %v", err)
		return nil, false, nil
	}
	set := single(pr)
	defer set.close()
	c := newAliasCollector(asked)
	st, interrupted, err := set.run(t.ctx, probe.NewRounds(nil, probe.KindTCPSYN, probe.AliasTuples(src, asked), 1, t.rng), t.cfg.Probing, c, t.env)
	t.stats.Add(st)
	if err != nil || interrupted {
		return nil, interrupted, err
	}
	return report.JudgeAliases(c.answers), false, nil
}

// aliasCollector keeps each pair's answer, by its echo identifier.
type aliasCollector struct{ answers []report.AliasAnswer }

var _ probe.Collector = (*aliasCollector)(nil)

func newAliasCollector(pairs []probe.AliasPair) *aliasCollector {
	c := &aliasCollector{answers: make([]report.AliasAnswer, len(pairs))}
	for i, p := range pairs {
		c.answers[i] = report.AliasAnswer{Addr: p.Addr, Ask: p.Ask}
	}
	return c
}

func (c *aliasCollector) Collect(r probe.Result) {
	i := int(r.Tuple.SrcPort)
	if i >= len(c.answers) || r.Outcome != probe.Answered || r.From != c.answers[i].Addr {
		return
	}
	c.answers[i].Answered, c.answers[i].Stamped = true, r.Stamped
}

// Late replies carry no stamps the engine keeps: their pairs stay
// unanswered, which proves nothing either way.
func (c *aliasCollector) Late(probe.Probe) {}
