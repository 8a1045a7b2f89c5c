package responder

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/retry"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// ReverseProber sends reverse probes and reads their answers
// (probe.OpenReverse).
type ReverseProber interface {
	probe.Sender
	Receivers() []probe.Receiver
	Close() error
}

var _ ReverseProber = (*probe.RawProber)(nil)

// OpenReverse opens raw sockets for reverse probes from local toward peer:
// the default Config.OpenReverse.
func OpenReverse(local netip.AddrPort, peer netip.Addr) (ReverseProber, error) {
	return probe.OpenReverse(local, peer)
}

// maxReverse bounds the reverse traces under way at once, over all runs:
// one, so ProbeRate caps the responder's probes whatever the clients ask.
const maxReverse = 1

// reverseRun is one run's reverse trace.
type reverseRun struct {
	started ReverseStarted
	sports  []uint16

	tuples   map[uint16]hash.FiveTuple // the probes' tuples by the client's port
	patience time.Duration
	perHop   int

	mu      sync.Mutex
	state   string
	err     string
	hops    *report.Hops
	retried *ReverseRetried
	gateway netip.Addr
}

// retry probes again, within the patience, the silent hops of routers
// that rate-limit their errors toward the responder (internal/retry), at
// most as many probes as the first pass sent. A flow is healthy here when
// the client answered its probes.
func (rr *reverseRun) retry(ctx context.Context, e *probe.Engine, first probe.Plan) (*report.Retried, error) {
	p := retry.New(rr.flows(), rr.tuples, probe.KindTCPSYNACK, newRand())
	if p == nil {
		return nil, nil
	}
	p.Budget = rr.started.Probes
	send := func(probes probe.List) (bool, error) {
		round := first
		round.Probes = probes
		_, err := e.Run(ctx, round, rr)
		return ctx.Err() != nil, err
	}
	_, err := p.Run(ctx, e.Clock, rr.patience, rr.perHop, send, rr.answered)
	return &p.Retried, err
}

// flows are the traced flows as far as they got, in the responder's frame.
func (rr *reverseRun) flows() []report.FlowTrace {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make([]report.FlowTrace, 0, len(rr.sports))
	for _, sp := range rr.sports {
		hs := rr.hops.Path(sp)
		f := report.FlowTrace{Sport: sp, State: hash.StateFail, Hops: hs, ReachedTTL: report.ReachedTTL(hs)}
		if f.ReachedTTL > 0 {
			f.State = hash.StateOK
		}
		out = append(out, f)
	}
	return out
}

// orderedTuples are the probes' tuples in the order of the ports asked.
func (rr *reverseRun) orderedTuples() []hash.FiveTuple {
	out := make([]hash.FiveTuple, 0, len(rr.sports))
	for _, sp := range rr.sports {
		out = append(out, rr.tuples[sp])
	}
	return out
}

func (rr *reverseRun) answered(sport uint16, ttl int) bool {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return rr.hops.Answered(sport, ttl)
}

// Collect records a result under the client's port (the flow's source
// port, as in the client's own trace).
func (rr *reverseRun) Collect(r probe.Result) {
	r.Tuple = r.Tuple.Reverse()
	rr.mu.Lock()
	rr.hops.Add(r)
	rr.mu.Unlock()
}

func (rr *reverseRun) Late(probe.Probe) {}

// snapshot is the trace as far as it got.
func (rr *reverseRun) snapshot() *ReturnTraces {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := &ReturnTraces{State: rr.state, Error: rr.err, Flows: []ReturnFlow{}, Retried: rr.retried}
	if rr.gateway.IsValid() {
		out.Gateway = rr.gateway.String()
	}
	for _, sp := range rr.sports {
		if hs := rr.hops.Path(sp); len(hs) > 0 {
			out.Flows = append(out.Flows, ReturnFlow{Sport: sp, Hops: WireHops(hs)})
		}
	}
	return out
}

func (rr *reverseRun) finish(err error) {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.state = ReverseDone
	if err != nil {
		rr.state, rr.err = ReverseFailed, err.Error()
	}
}

// reverse starts tracing the return paths of some of a run's flows. The
// probes go only to the run's client (the authenticated peer that
// registered it) on its registered ports, from the run's target.
func (s *Server) reverse(peer netip.Addr, body json.RawMessage) (any, error) {
	req, err := DecodeReverse(body)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.expire(now)
	r, ok := s.runs[req.Run]
	if !ok || r.client != peer {
		return nil, fmt.Errorf("%w: no such run of yours", ErrScope)
	}
	if r.reverse != nil {
		return r.reverse.started, nil // a retried request
	}
	for _, sp := range req.Sports {
		if r.arrivals[sp] == nil {
			return nil, fmt.Errorf("%w: source port %d is not one of the run's", ErrScope, sp)
		}
	}
	rate := s.cfg.ProbeRate
	if req.Rate > 0 {
		rate = min(rate, req.Rate)
	}
	probes := len(req.Sports) * req.MaxTTL * req.PerHop
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	patience := time.Duration(req.PatienceMS) * time.Millisecond
	if d := time.Duration(float64(probes)/rate*float64(time.Second)) + timeout + patience; now.Add(d).After(r.expires) {
		return nil, fmt.Errorf("%w: %d probes at %g/s take %s, past the run's end", ErrScope, probes, rate, d.Round(time.Millisecond))
	}
	if s.reversing >= maxReverse {
		return nil, fmt.Errorf("%w: %d reverse traces already under way", ErrBusy, s.reversing)
	}
	prober, err := s.cfg.OpenReverse(r.target, r.client)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotProbe, err)
	}
	tuples := reverseTuples(r, req.Sports)
	rr := &reverseRun{started: ReverseStarted{Run: r.id, Probes: probes, Rate: rate}, sports: slices.Clone(req.Sports),
		state: ReverseRunning, hops: report.NewHops(), tuples: map[uint16]hash.FiveTuple{}, patience: patience, perHop: req.PerHop}
	for i, sp := range req.Sports {
		rr.tuples[sp] = tuples[i]
	}
	r.reverse = rr
	s.reversing++
	s.cfg.Log(fmt.Sprintf("run %s: tracing %d return paths to %s, %d probes at %g/s", r.id, len(req.Sports), r.client, probes, rate))
	plan := probe.Plan{Probes: probe.NewReverseRounds(tuples, req.MaxTTL, req.PerHop, newRand()),
		Rate: rate, Timeout: timeout, Grace: timeout}
	s.wg.Add(1)
	go s.runReverse(r.id, prober, plan, rr)
	return rr.started, nil
}

// runReverse sends a reverse trace's probes and records what answers.
func (s *Server) runReverse(id string, prober ReverseProber, plan probe.Plan, rr *reverseRun) {
	defer s.wg.Done()
	defer prober.Close()
	e := &probe.Engine{Sender: prober, Receivers: prober.Receivers(), Secret: newSecret(), Clock: probe.SystemClock{}}
	// The first hop the answers leave by, from the routing table: it
	// names a first return hop that answers no probe.
	gw := route.Common(s.ctx, s.cfg.FirstHop, rr.orderedTuples())
	rr.mu.Lock()
	rr.gateway = gw
	rr.mu.Unlock()
	_, err := e.Run(s.ctx, plan, rr)
	if err == nil && s.ctx.Err() == nil && rr.patience > 0 {
		var again *report.Retried
		if again, err = rr.retry(s.ctx, e, plan); again != nil {
			s.cfg.Log(fmt.Sprintf("run %s: rate-limited at TTLs %v: %d silent hops, %d probes again in %d rounds, %d answers",
				id, again.TTLs, again.Holes, again.Probes, again.Rounds, again.Answers))
			rr.mu.Lock()
			rr.retried = &ReverseRetried{TTLs: again.TTLs, Holes: again.Holes, Rounds: again.Rounds, Probes: again.Probes, Answers: again.Answers}
			rr.mu.Unlock()
		}
	}
	if s.ctx.Err() != nil {
		err = fmt.Errorf("the responder is stopping")
	}
	rr.finish(err)
	s.mu.Lock()
	s.reversing--
	s.mu.Unlock()
	if err != nil {
		s.cfg.Log(fmt.Sprintf("run %s: reverse trace: %v", id, err))
	}
}

// reverseTuples are the answers' tuples of a run's flows.
func reverseTuples(r *run, sports []uint16) []hash.FiveTuple {
	out := make([]hash.FiveTuple, len(sports))
	for i, sp := range sports {
		out[i] = hash.FiveTuple{Src: r.target.Addr(), Dst: r.client, Proto: hash.ProtoTCP, SrcPort: r.target.Port(), DstPort: sp}
	}
	return out
}

func newSecret() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func newRand() *mrand.Rand { return mrand.New(mrand.NewPCG(newSecret(), newSecret())) }
