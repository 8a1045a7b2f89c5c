package core

import (
	"context"
	"errors"
	"time"

	"github.com/ecmpscan/ecmpscan/probe"
)

// probers is what a job probes with: the sender and receivers of one or
// more open probers, and how to close them.
type probers struct {
	sender    probe.Sender
	receivers []probe.Receiver
	closers   []func() error
	// passes are the engine passes run so far: a responder's arrivals are
	// decoded with their secrets into probes.
	passes []pass
}

// pass is one engine pass: its cookie secret and its probes.
type pass struct {
	secret uint64
	src    probe.Source
}

func single(p Prober) *probers {
	return &probers{sender: p, receivers: p.Receivers(), closers: []func() error{p.Close}}
}

func (p *probers) close() {
	for _, c := range p.closers {
		_ = c()
	}
}

// run runs one engine pass with fresh cookies. An interrupt is not an
// error: the partial result comes back with interrupted set.
func (p *probers) run(ctx context.Context, src probe.Source, pr Probing, c probe.Collector, env Env) (probe.Stats, bool, error) {
	eng := &probe.Engine{
		Sender: p.sender, Receivers: p.receivers, Clock: env.Clock,
		Secret: env.random(), OnProgress: env.Progress,
	}
	p.passes = append(p.passes, pass{secret: eng.Secret, src: src})
	plan := probe.Plan{
		Probes: src, Rate: pr.Rate, Timeout: pr.Timeout,
		Grace: min(pr.Timeout, 500*time.Millisecond),
	}
	st, err := eng.Run(ctx, plan, c)
	interrupted := errors.Is(err, context.Canceled) || ctx.Err() != nil
	if err != nil && !interrupted {
		return st, false, cannotProbe(err)
	}
	return st, interrupted, nil
}
