package probe

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

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
	// SendErr, when set, says that the probe Reply names never left the
	// host: a connect that failed locally (port in use, not permitted).
	SendErr error
	// Dropped is the socket's count of packets it dropped since it was
	// opened (SO_RXQ_OVFL), when the receiver knows it.
	Dropped uint32
}

// Collector receives the results of a run. The engine calls it with its
// lock held, one call at a time, so it needs no locking of its own and must
// not block.
type Collector interface {
	// Collect gets every probe the send loop took up, once, in send order,
	// when the probe leaves the in-flight window (its timeout has passed,
	// or the run is over).
	Collect(Result)
	// Late gets each reply to a probe that had already been collected.
	Late(Probe)
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
	Probes  Source // in send order
	Rate    float64
	Timeout time.Duration
	// Grace is how long replies are still awaited after ctx is cancelled.
	Grace time.Duration
}

// Progress is a snapshot for a progress display.
type Progress struct {
	Total, Sent, Resolved int
}

// Engine runs a plan: one paced send loop, one receive loop per receiver,
// and a sweeper that times probes out, all under one errgroup. It holds a
// record only for probes in flight (sent within the last timeout), so its
// memory follows rate x timeout, not the number of probes.
type Engine struct {
	Sender    Sender
	Receivers []Receiver
	Clock     Clock
	// Secret makes the probe cookies unguessable per run.
	Secret uint64
	// OnProgress, if set, is called from the sweeper a few times a second.
	OnProgress func(Progress)
}

// Run sends every probe of the plan and hands each result to c. When ctx
// is cancelled it stops sending, waits plan.Grace for replies in flight,
// collects what it has and returns ctx's error.
func (e *Engine) Run(ctx context.Context, plan Plan, c Collector) (Stats, error) {
	if plan.Probes == nil || plan.Probes.Len() == 0 || !(plan.Rate > 0) || plan.Timeout <= 0 || c == nil {
		return Stats{}, ErrBadPlan
	}
	clock := e.Clock
	if clock == nil {
		clock = SystemClock{}
	}
	r := newRun(plan, e.Secret, c, len(e.Receivers), clock.Now())

	// The run's own context outlives ctx so replies in flight are still read
	// during the grace period after an interrupt.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	for n, rc := range e.Receivers {
		g.Go(func() error { return r.receiveLoop(gctx, rc, n) })
	}
	g.Go(func() error { return r.sendLoop(ctx, gctx, e.Sender, clock) })
	g.Go(func() error {
		r.sweepLoop(gctx, clock, e.OnProgress)
		stopRun()
		return nil
	})
	err := g.Wait()
	stats := r.close()
	if err != nil {
		return stats, err
	}
	return stats, ctx.Err()
}

// run is the shared state of one Run. Everything below mu is guarded by it.
type run struct {
	plan  Plan
	key   cookieKey
	start time.Time // record times count from here (monotonic)

	mu          sync.Mutex
	collector   Collector
	window      window // probes base, base+1, ... still in flight
	base        int
	next        int // the next probe to send
	outstanding int
	sendingDone bool
	closed      bool      // collected: nothing more is matched
	stopAt      time.Time // set when interrupted: give up waiting then
	drops       []uint32  // per receiver, the socket's drop counter
	stats       Stats
	finished    chan struct{}
	finishOnce  sync.Once
}

func newRun(plan Plan, secret uint64, c Collector, receivers int, start time.Time) *run {
	return &run{
		start:     start,
		plan:      plan,
		key:       cookieKey(secret),
		collector: c,
		drops:     make([]uint32, receivers),
		finished:  make(chan struct{}),
	}
}

// sendLoop paces probes with a token bucket fed by a ticker. Tokens never pile
// up beyond a few ticks' worth, so a stalled sender cannot burst afterwards.
func (r *run) sendLoop(ctx, runCtx context.Context, s Sender, clock Clock) error {
	defer r.markSendingDone(clock)
	total := r.plan.Probes.Len()
	interval := time.Duration(float64(time.Second) / r.plan.Rate)
	if interval < time.Millisecond {
		interval = time.Millisecond
	}
	// Allow a few ticks of catch-up: tickers run late under load, and a
	// one-tick cap would quietly lower the rate.
	burst := max(4*r.plan.Rate*interval.Seconds(), 1)
	tick, stop := clock.Ticker(interval)
	defer stop()
	tokens := 1.0
	last := clock.Now()
	for sent := 0; sent < total; {
		for ; tokens >= 1 && sent < total; sent, tokens = sent+1, tokens-1 {
			if ctx.Err() != nil {
				return nil
			}
			if err := r.sendOne(s, clock); err != nil {
				return err
			}
		}
		if sent == total {
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
		tokens = min(tokens+now.Sub(last).Seconds()*r.plan.Rate, burst)
		last = now
	}
	return nil
}

// sendOne registers the next probe before it leaves, so an instant reply
// finds it.
func (r *run) sendOne(s Sender, clock Clock) error {
	r.mu.Lock()
	i := r.next
	p := r.plan.Probes.At(i)
	p.Cookie = r.key.cookieOf(p, i)
	r.window.push(record{sent: clock.Now().Sub(r.start), inSend: true})
	r.stats.PeakInFlight = max(r.stats.PeakInFlight, r.window.len())
	r.next++
	r.outstanding++
	r.stats.Sent++
	r.mu.Unlock()

	at, err := s.Send(p)

	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.window.at(i - r.base) // inSend keeps it in the window
	rec.inSend = false
	if err != nil {
		if errors.Is(err, ErrPermission) {
			return err
		}
		r.failSend(rec, err)
		return nil
	}
	if !at.IsZero() && rec.outcome == Pending {
		rec.sent = at.Sub(r.start)
	}
	return nil
}

// failSend records that a probe never left the host.
func (r *run) failSend(rec *record, err error) {
	if rec.outcome != Pending {
		return
	}
	rec.outcome, rec.detail = SendFailed, detailSendError
	rec.rare = &rareFields{sendErr: err.Error(), cause: CauseOf(err)}
	r.outstanding--
	r.stats.Sent--
	r.stats.addFailure(rec.rare.cause, 1, rec.rare.sendErr)
	r.checkFinished()
}

func (r *run) markSendingDone(clock Clock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendingDone = true
	if r.next < r.plan.Probes.Len() {
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

func (r *run) receiveLoop(ctx context.Context, rc Receiver, n int) error {
	for {
		a, err := rc.Receive(ctx)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err == nil:
			r.handle(a, n)
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
// so the oldest expire first), collects them, and ends the run once nothing
// is outstanding.
func (r *run) sweepLoop(ctx context.Context, clock Clock, onProgress func(Progress)) {
	every := min(max(r.plan.Timeout/10, time.Millisecond), 50*time.Millisecond)
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
		r.retire(now)
		r.checkFinished()
		r.mu.Unlock()
		if onProgress != nil && now.Sub(lastReport) >= 100*time.Millisecond {
			lastReport = now
			r.report(onProgress)
		}
	}
}

// retire collects the probes at the front of the window whose timeout has
// passed (or all of them, once the grace after an interrupt is over).
func (r *run) retire(now time.Time) {
	giveUp := !r.stopAt.IsZero() && !now.Before(r.stopAt)
	for r.window.len() > 0 {
		rec := r.window.at(0)
		if rec.inSend || (now.Sub(r.start)-rec.sent < r.plan.Timeout && !giveUp) {
			return
		}
		if rec.outcome == Pending {
			rec.outcome = Timeout
			r.outstanding--
		}
		r.popFront()
	}
}

func (r *run) popFront() {
	rec := r.window.pop()
	r.collector.Collect(r.resultOf(r.base, &rec))
	r.base++
}

// close collects every probe still in the window and returns the counters.
// Nothing is matched after it.
func (r *run) close() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for r.window.len() > 0 {
		if rec := r.window.at(0); rec.outcome == Pending {
			rec.outcome = Timeout
		}
		r.popFront()
	}
	for _, d := range r.drops {
		r.stats.LocalDrops += int(d)
	}
	return r.stats
}

// resultOf spells out the record of probe i.
func (r *run) resultOf(i int, rec *record) Result {
	p := r.plan.Probes.At(i)
	p.Cookie = r.key.cookieOf(p, i)
	res := Result{
		Probe: p, Outcome: rec.outcome, Sent: r.start.Add(rec.sent), RTT: rec.rtt, From: rec.from,
		Detail: rec.detailText(), ICMPType: rec.icmpType, ICMPCode: rec.icmpCode, ReplyTTL: rec.replyTTL, IPID: rec.ipid,
		Late: int(rec.late), Duplicates: int(rec.dup),
	}
	if rec.rare != nil {
		res.MPLS, res.Stamped, res.Cause = rec.rare.mpls, rec.rare.stamped, rec.rare.cause
	}
	return res
}

func (r *run) report(onProgress func(Progress)) {
	if onProgress == nil {
		return
	}
	r.mu.Lock()
	p := Progress{Total: r.plan.Probes.Len(), Sent: r.next, Resolved: r.next - r.outstanding}
	r.mu.Unlock()
	onProgress(p)
}
