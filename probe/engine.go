package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// Sender puts one probe on the wire and says when it left.
type Sender interface {
	Send(p Probe) (sentAt time.Time, err error)
}

// Receiver hands over parsed replies, one at a time. It must return
// promptly once ctx is done. An error wrapping packet.ErrMalformed or
// packet.ErrTruncated is counted and the loop goes on; ErrIgnored is skipped
// silently; any other error ends the run.
type Receiver interface {
	Receive(ctx context.Context) (Arrival, error)
}

// ErrIgnored marks received bytes that are not for us (other protocols,
// other flows): not an error, not malformed.
var ErrIgnored = errors.New("not a reply to any probe")

// Arrival is a parsed reply and when it arrived, ideally by the kernel's
// receive timestamp.
type Arrival struct {
	Reply packet.Reply
	At    time.Time
}

// Clock is injected so tests drive time instead of sleeping.
type Clock interface {
	Now() time.Time
	// Ticker returns a channel ticking every d and a stop function.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

// SystemClock is the real clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }

func (SystemClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Plan is what to send and how fast.
type Plan struct {
	Probes  []Probe // in send order
	Rate    float64 // probes per second
	Timeout time.Duration
	// Grace is how long replies are still awaited after ctx is cancelled.
	Grace time.Duration
	// Earlier are probes an earlier run sent on the same flows (a sweep
	// before its trace). Replies to them are recognised and answer nothing.
	Earlier []Probe
}

// Progress is a snapshot for a progress display.
type Progress struct {
	Total, Sent, Resolved int
}

// Engine runs a plan: one paced send loop, one receive loop per receiver,
// and a sweeper that times probes out, all under one errgroup.
type Engine struct {
	Sender    Sender
	Receivers []Receiver
	Clock     Clock
	// Secret makes the probe cookies unguessable per run.
	Secret uint64
	// OnProgress, if set, is called from the sweeper a few times a second.
	OnProgress func(Progress)
}

// Run sends every probe of the plan and returns one Result per sent probe,
// in plan order. When ctx is cancelled it stops sending, waits plan.Grace for
// replies in flight, and returns the partial results with ctx's error.
func (e *Engine) Run(ctx context.Context, plan Plan) ([]Result, Stats, error) {
	if len(plan.Probes) == 0 || plan.Rate <= 0 || plan.Timeout <= 0 {
		return nil, Stats{}, ErrBadPlan
	}
	clock := e.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	r, err := newRun(plan, e.Secret)
	if err != nil {
		return nil, Stats{}, err
	}

	// The run's own context outlives ctx so replies in flight are still read
	// during the grace period after an interrupt.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	for _, rc := range e.Receivers {
		g.Go(func() error { return r.receiveLoop(gctx, rc) })
	}
	g.Go(func() error { return r.sendLoop(ctx, gctx, e.Sender, clock) })
	g.Go(func() error {
		r.sweepLoop(gctx, clock, e.OnProgress)
		stopRun()
		return nil
	})
	if err := g.Wait(); err != nil {
		return r.sentResults(), r.stats, err
	}
	return r.sentResults(), r.stats, ctx.Err()
}

type probeKey struct {
	tuple  hash.FiveTuple
	cookie uint32
}

// run is the shared state of one Run. Everything below mu is guarded by it.
type run struct {
	plan Plan

	mu          sync.Mutex
	results     []Result
	byCookie    map[probeKey]int
	earlier     map[probeKey]bool      // cookies of an earlier run's probes
	latest      map[hash.FiveTuple]int // last sent probe on each tuple
	sendOrder   []int                  // indexes in the order sent
	expired     int                    // sendOrder[:expired] are past their timeout
	outstanding int
	sendingDone bool
	stopAt      time.Time // set when interrupted: give up waiting then
	stats       Stats
	finished    chan struct{}
	finishOnce  sync.Once
}

func newRun(plan Plan, secret uint64) (*run, error) {
	r := &run{
		plan:     plan,
		results:  make([]Result, len(plan.Probes)),
		byCookie: make(map[probeKey]int, len(plan.Probes)),
		earlier:  make(map[probeKey]bool, len(plan.Earlier)),
		latest:   make(map[hash.FiveTuple]int),
		finished: make(chan struct{}),
	}
	for _, p := range plan.Earlier {
		r.earlier[probeKey{p.Tuple, p.Cookie}] = true
	}
	for i, p := range plan.Probes {
		// Derive a cookie per probe; on the rare collision on one tuple, mix again.
		for salt := uint64(0); ; salt++ {
			if salt > 16 {
				return nil, fmt.Errorf("%w: cannot derive unique cookies", ErrBadPlan)
			}
			c := cookie(secret, uint64(i), salt)
			if p.Kind == KindICMPEcho {
				c &= 0xffff // echo sequence numbers are 16 bits
			}
			k := probeKey{p.Tuple, c}
			if _, taken := r.byCookie[k]; taken {
				continue
			}
			p.Cookie = c
			r.byCookie[k] = i
			break
		}
		r.results[i].Probe = p
	}
	return r, nil
}

// cookie is a splitmix64 finaliser over the secret, the probe index and a salt.
func cookie(secret, index, salt uint64) uint32 {
	z := secret + (index+1)*0x9e3779b97f4a7c15 + salt*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return uint32((z ^ (z >> 31)) >> 16)
}

// sendLoop paces probes with a token bucket fed by a ticker. Tokens never pile
// up beyond one tick's worth, so a stalled sender cannot burst afterwards.
func (r *run) sendLoop(ctx, runCtx context.Context, s Sender, clock Clock) error {
	defer r.markSendingDone(clock)
	interval := time.Duration(float64(time.Second) / r.plan.Rate)
	if interval < time.Millisecond {
		interval = time.Millisecond
	}
	// Allow a few ticks of catch-up: tickers run late under load, and a
	// one-tick cap would quietly lower the rate.
	burst := 4 * r.plan.Rate * interval.Seconds()
	if burst < 1 {
		burst = 1
	}
	tick, stop := clock.Ticker(interval)
	defer stop()
	tokens := 1.0
	last := clock.Now()
	for next := 0; next < len(r.results); {
		for tokens >= 1 && next < len(r.results) {
			if ctx.Err() != nil {
				return nil
			}
			if err := r.sendOne(s, next, clock); err != nil {
				return err
			}
			next++
			tokens--
		}
		if next == len(r.results) {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-runCtx.Done():
			return nil
		case <-tick:
		}
		now := clock.Now()
		tokens += now.Sub(last).Seconds() * r.plan.Rate
		last = now
		if tokens > burst {
			tokens = burst
		}
	}
	return nil
}

// sendOne registers the probe before it leaves, so an instant reply finds it.
func (r *run) sendOne(s Sender, i int, clock Clock) error {
	r.mu.Lock()
	res := &r.results[i]
	res.Sent = clock.Now()
	r.latest[res.Tuple] = i
	r.sendOrder = append(r.sendOrder, i)
	r.outstanding++
	r.stats.Sent++
	p := res.Probe
	r.mu.Unlock()

	at, err := s.Send(p)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if errors.Is(err, ErrPermission) {
			return err
		}
		if res.Outcome == Pending {
			res.Outcome = SendFailed
			res.Detail = err.Error()
			r.outstanding--
		}
		return nil
	}
	if !at.IsZero() && res.Outcome == Pending {
		res.Sent = at
	}
	return nil
}

func (r *run) markSendingDone(clock Clock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendingDone = true
	if len(r.sendOrder) < len(r.results) {
		// Interrupted: wait for replies in flight, but not for the full timeout.
		r.stopAt = clock.Now().Add(r.plan.Grace)
	}
	r.checkFinished()
}

func (r *run) checkFinished() {
	if r.sendingDone && r.outstanding == 0 {
		r.finishOnce.Do(func() { close(r.finished) })
	}
}

func (r *run) receiveLoop(ctx context.Context, rc Receiver) error {
	for {
		a, err := rc.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			r.handle(a)
		case errors.Is(err, ErrIgnored):
		case errors.Is(err, packet.ErrMalformed), errors.Is(err, packet.ErrTruncated), errors.Is(err, packet.ErrUnsupported):
			r.mu.Lock()
			if errors.Is(err, packet.ErrUnsupported) {
				r.stats.Unmatched++
			} else {
				r.stats.Malformed++
			}
			r.mu.Unlock()
		default:
			return fmt.Errorf("receive: %w", err)
		}
	}
}

// sweepLoop times probes out in send order (the timeout is the same for all,
// so the oldest expire first) and ends the run once nothing is outstanding.
func (r *run) sweepLoop(ctx context.Context, clock Clock, onProgress func(Progress)) {
	every := r.plan.Timeout / 10
	every = min(max(every, time.Millisecond), 50*time.Millisecond)
	tick, stop := clock.Ticker(every)
	defer stop()
	lastReport := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.finished:
			r.report(onProgress)
			return
		case <-tick:
		}
		now := clock.Now()
		r.mu.Lock()
		for r.expired < len(r.sendOrder) {
			i := r.sendOrder[r.expired]
			res := &r.results[i]
			giveUp := !r.stopAt.IsZero() && !now.Before(r.stopAt)
			if now.Sub(res.Sent) < r.plan.Timeout && !giveUp {
				break
			}
			if res.Outcome == Pending {
				res.Outcome = Timeout
				r.outstanding--
			}
			r.expired++
		}
		r.checkFinished()
		r.mu.Unlock()
		if onProgress != nil && now.Sub(lastReport) >= 100*time.Millisecond {
			lastReport = now
			r.report(onProgress)
		}
	}
}

func (r *run) report(onProgress func(Progress)) {
	if onProgress == nil {
		return
	}
	r.mu.Lock()
	p := Progress{Total: len(r.results), Sent: len(r.sendOrder), Resolved: len(r.sendOrder) - r.outstanding}
	r.mu.Unlock()
	onProgress(p)
}

// handle matches one reply to its probe: by the reversed (or quoted) tuple and
// the cookie. A SYN-ACK or RST acknowledging a probe answers it. A TCP segment
// on the reverse tuple whose ack carries no cookie of ours (an ACK from a
// TIME_WAIT socket) still proves the path works, and goes to the newest probe
// on that tuple.
func (r *run) handle(a Arrival) {
	rep := a.Reply
	r.mu.Lock()
	defer r.mu.Unlock()
	switch rep.Kind {
	case packet.KindTCP:
		out := rep.Tuple.Reverse()
		acked := probeKey{out, rep.Ack - 1}
		i, ok := r.byCookie[acked]
		earlier := r.earlier[acked]
		if rep.Flags&(packet.FlagSYN|packet.FlagRST) == 0 && (ok || earlier) {
			// A bare ACK of one of our SYNs is a server still half-open
			// from that probe, answering a newer SYN on the same flow: the
			// earlier SYN-ACK never reached us. Not proof the path works.
			r.stats.HalfOpen++
			return
		}
		if !ok && earlier {
			// A late answer to the earlier run: not to any probe of ours.
			r.stats.Unmatched++
			return
		}
		if !ok && rep.Flags&packet.FlagRST != 0 {
			i, ok = r.byCookie[probeKey{out, rep.Ack}]
		}
		if !ok {
			i, ok = r.latest[out]
		}
		if !ok {
			r.stats.Unmatched++
			return
		}
		r.resolve(i, Answered, a, tcpDetail(rep.Flags))
	case packet.KindEchoReply:
		out := echoTuple(rep.To, rep.From, rep.EchoID)
		i, ok := r.byCookie[probeKey{out, uint32(rep.EchoSeq)}]
		if !ok {
			r.stats.Unmatched++
			return
		}
		r.resolve(i, Answered, a, "echo-reply")
	case packet.KindICMPError:
		out, c := rep.Tuple, rep.QuotedSeq
		if rep.QuotedProto != hash.ProtoTCP {
			out, c = echoTuple(rep.Tuple.Src, rep.Tuple.Dst, rep.EchoID), uint32(rep.EchoSeq)
		}
		i, ok := r.byCookie[probeKey{out, c}]
		if !ok {
			r.stats.Unmatched++
			return
		}
		r.resolve(i, Unreachable, a, fmt.Sprintf("icmp %d/%d", rep.ICMPType, rep.ICMPCode))
	default:
		r.stats.Unmatched++
	}
}

func echoTuple(src, dst netip.Addr, id uint16) hash.FiveTuple {
	proto := hash.ProtoICMP
	if dst.Is6() && !dst.Is4In6() {
		proto = hash.ProtoICMPv6
	}
	return hash.FiveTuple{Src: src, Dst: dst, Proto: proto, SrcPort: id}
}

func tcpDetail(flags uint8) string {
	switch {
	case flags&packet.FlagRST != 0:
		return "rst"
	case flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK:
		return "syn-ack"
	case flags&packet.FlagACK != 0:
		return "ack"
	}
	return "tcp"
}

// resolve records the first answer of a probe; later ones are late (after a
// timeout) or duplicates (after an answer), never a second outcome.
func (r *run) resolve(i int, o Outcome, a Arrival, detail string) {
	res := &r.results[i]
	if res.Sent.IsZero() {
		// A reply for a probe we have not sent yet cannot be ours.
		r.stats.Unmatched++
		return
	}
	switch res.Outcome {
	case Pending:
		res.Outcome = o
		res.RTT = max(a.At.Sub(res.Sent), 0)
		res.From = a.Reply.From
		res.Detail = detail
		res.ReplyTTL = a.Reply.TTL
		if a.Reply.Kind != packet.KindTCP {
			res.ICMPType, res.ICMPCode = a.Reply.ICMPType, a.Reply.ICMPCode
			for _, e := range a.Reply.MPLS {
				res.MPLS = append(res.MPLS, e.Label)
			}
		}
		r.outstanding--
		r.checkFinished()
	case Timeout:
		res.Late++
	default:
		res.Duplicates++
	}
}

// sentResults returns the results of the probes that were sent, in plan order.
func (r *run) sentResults() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Result, 0, len(r.sendOrder))
	for _, res := range r.results {
		if !res.Sent.IsZero() {
			out = append(out, res)
		}
	}
	return out
}
