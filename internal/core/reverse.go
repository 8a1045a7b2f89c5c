package core

import (
	"fmt"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/report"
)

// Return-path traces (trace --responder): the responder sends TTL-limited
// SYN-ACKs on the reversed tuple of the flows that failed although their
// SYNs arrived, and of healthy flows to compare them with; their return
// hops are diagnosed like forward paths.

// Bounds of what is traced back: every failing flow up to
// maxReturnFailing, healthy ones up to responder.MaxReverseFlows in all.
const (
	maxReturnFailing = 32
	// reversePoll is how often the responder is asked how far it got.
	reversePoll = 500 * time.Millisecond
)

// returnSample picks the flows to trace back: those that fail although
// their SYNs arrived (lost on the way back), then healthy ones. None when
// no flow is lost on the way back: the return paths would show nothing.
func returnSample(flows []report.FlowTrace, arrived map[uint16]bool) []uint16 {
	var fail, ok []uint16
	for _, f := range flows {
		switch {
		case f.State == hash.StateFail && arrived[f.Sport]:
			fail = append(fail, f.Sport)
		case f.State == hash.StateOK:
			ok = append(ok, f.Sport)
		}
	}
	if len(fail) == 0 {
		return nil
	}
	out := spread(fail, maxReturnFailing)
	return append(out, spread(ok, responder.MaxReverseFlows-len(out))...)
}

// traceBack asks the responder to trace the return paths, waits for them
// and diagnoses them into tr. Failures are noted in the diagnosis, never
// fatal: the one-ended diagnosis stands without them.
func (t *tracer) traceBack(tr *report.Trace) {
	if t.two == nil || t.two.err != nil || t.ctx.Err() != nil {
		return
	}
	sports := returnSample(tr.Flows, t.arrived)
	if len(sports) == 0 {
		return
	}
	maxTTL := min(tr.MaxTTL+1, t.cfg.MaxTTL, responder.MaxReverseTTL)
	req := responder.ReverseRequest{Run: t.two.run, Sports: sports, MaxTTL: maxTTL,
		PerHop: min(max(t.cfg.HopProbes, 1), responder.MaxReversePerHop), Rate: t.cfg.Rate,
		TimeoutMS: min(max(t.cfg.Timeout.Milliseconds(), 100), 5000), PatienceMS: reversePatience(t.cfg.TraceOptions).Milliseconds()}
	traces, err := t.reverse(req)
	rp := &report.ReturnPaths{Direction: report.DirectionUnknown}
	if err == nil {
		err = attachReturnHops(tr.Flows, traces)
	}
	if err != nil {
		t.env.notice("return paths not traced: %v", err)
		rp.Err = err.Error()
	} else {
		gw, gwErr := traces.FirstHop()
		if gwErr != nil {
			t.env.notice("the responder's gateway: %v", gwErr)
		}
		t.returnGateway = gw
		rp = report.DiagnoseReturnPaths(tr.Flows, gw)
		rp.Retried, err = reverseRetried(traces)
		if err != nil {
			t.env.notice("the responder's retries: %v", err)
		}
	}
	tr.Diagnosis = report.WithReturnPaths(tr.Diagnosis, rp)
}

// reverse starts the responder's reverse trace and polls until it is done,
// within the time its probes take plus a margin.
func (t *tracer) reverse(req responder.ReverseRequest) (*responder.ReturnTraces, error) {
	started, err := t.two.r.Reverse(t.ctx, req)
	if err != nil {
		return nil, err
	}
	clock := t.env.clock()
	// The last round of probing again may start just before the patience
	// ends and take its probes' timeouts.
	patience := time.Duration(req.PatienceMS) * time.Millisecond
	if patience > 0 {
		patience += 2 * time.Duration(req.TimeoutMS) * time.Millisecond
	}
	budget := time.Duration(float64(started.Probes)/started.Rate*float64(time.Second)) +
		2*time.Duration(req.TimeoutMS)*time.Millisecond + patience + 10*time.Second
	deadline := clock.Now().Add(budget)
	tick, stop := clock.Ticker(reversePoll)
	defer stop()
	for {
		select {
		case <-t.ctx.Done():
			return nil, t.ctx.Err()
		case now := <-tick:
			rep, err := t.two.r.Report(t.ctx, t.two.run)
			switch {
			case err != nil:
				return nil, err
			case rep.Return == nil:
				return nil, fmt.Errorf("the responder has no reverse trace of this run")
			case rep.Return.State == responder.ReverseFailed:
				return nil, fmt.Errorf("the responder's reverse trace failed: %s", rep.Return.Error)
			case rep.Return.State == responder.ReverseDone:
				return rep.Return, nil
			case now.After(deadline):
				return nil, fmt.Errorf("the responder's reverse trace did not finish within %s", budget.Round(time.Second))
			}
		}
	}
}

// attachReturnHops puts each traced flow's return hops on it.
func attachReturnHops(flows []report.FlowTrace, traces *responder.ReturnTraces) error {
	at := map[uint16]int{}
	for i, f := range flows {
		at[f.Sport] = i
	}
	for _, rf := range traces.Flows {
		i, ok := at[rf.Sport]
		if !ok {
			return fmt.Errorf("%w: the responder traced back flow %d, which was not asked for", responder.ErrMalformed, rf.Sport)
		}
		hops, err := rf.TraceHops()
		if err != nil {
			return err
		}
		flows[i].ReturnHops = hops
	}
	return nil
}

// reverseRetried is what the responder's probing again brought, nil when
// it did not probe again or sent something out of bounds.
func reverseRetried(traces *responder.ReturnTraces) (*report.Retried, error) {
	if traces.Retried == nil {
		return nil, nil
	}
	r, err := traces.Retried.Retried()
	if err != nil {
		return nil, err
	}
	return &r, nil
}
