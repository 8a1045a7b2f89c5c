package probe

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// The engine tests run inside a synctest bubble: the real clock is virtual
// there and advances only when every goroutine is blocked, so timeouts take
// no wall time and the tests never sleep.

// fakeNet answers probes like a fabric where some source ports are dead.
type fakeNet struct {
	clock   Clock
	dead    map[uint16]bool // source ports whose probes vanish
	unreach map[uint16]bool // source ports answered by an ICMP error
	dup     bool            // answer every probe twice
	replies chan Arrival

	mu   sync.Mutex
	sent []Probe
}

func newFakeNet(clock Clock) *fakeNet {
	return &fakeNet{clock: clock, dead: map[uint16]bool{}, unreach: map[uint16]bool{}, replies: make(chan Arrival, 1<<16)}
}

func (f *fakeNet) Send(p Probe) (time.Time, error) {
	f.mu.Lock()
	f.sent = append(f.sent, p)
	f.mu.Unlock()
	now := f.clock.Now()
	switch {
	case f.dead[p.Tuple.SrcPort]:
	case f.unreach[p.Tuple.SrcPort]:
		f.replies <- Arrival{At: now, Reply: packet.Reply{
			Kind: packet.KindICMPError, From: router, To: p.Tuple.Src, Tuple: p.Tuple,
			QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie, ICMPType: 3, ICMPCode: 1,
		}}
	case p.Kind == KindICMPEcho:
		f.replies <- Arrival{At: now, Reply: packet.Reply{
			Kind: packet.KindEchoReply, From: p.Tuple.Dst, To: p.Tuple.Src,
			EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie), Tuple: p.Tuple.Reverse(),
		}}
	default:
		n := 1
		if f.dup {
			n = 2
		}
		for range n {
			f.replies <- Arrival{At: now, Reply: synAck(p)}
		}
	}
	return now, nil
}

func (f *fakeNet) Receive(ctx context.Context) (Arrival, error) {
	select {
	case a := <-f.replies:
		return a, nil
	case <-ctx.Done():
		return Arrival{}, ctx.Err()
	}
}

var (
	client = netip.MustParseAddr("198.18.1.1")
	server = netip.MustParseAddr("198.18.2.2")
	router = netip.MustParseAddr("198.19.3.1")
)

func synAck(p Probe) packet.Reply {
	return packet.Reply{Kind: packet.KindTCP, From: p.Tuple.Dst, To: p.Tuple.Src, Tuple: p.Tuple.Reverse(),
		Ack: p.Cookie + 1, Flags: packet.FlagSYN | packet.FlagACK}
}

func ports(first, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(first + i)
	}
	return out
}

func testPlan(sports []uint16, echoIDs, count int) Plan {
	dst := netip.AddrPortFrom(server, 3306)
	rng := rand.New(rand.NewPCG(1, 2))
	var echo []hash.FiveTuple
	if echoIDs > 0 {
		echo = EchoTuples(client, server, 100, echoIDs)
	}
	return Plan{
		Probes:  Order(Tuples(client, dst, sports), KindTCPSYN, echo, count, rng),
		Rate:    1000,
		Timeout: time.Second,
		Grace:   100 * time.Millisecond,
	}
}

func runFake(t *testing.T, ctx context.Context, f *fakeNet, clock Clock, plan Plan) ([]Result, Stats, error) {
	t.Helper()
	e := &Engine{Sender: f, Receivers: []Receiver{f}, Clock: clock, Secret: 42}
	return e.Run(ctx, plan)
}

func TestEngineMatchesEveryProbeAndTimesOutDeadPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := SystemClock{}
		f := newFakeNet(clock)
		f.dead[30003], f.dead[30011] = true, true
		f.unreach[30007] = true
		plan := testPlan(ports(30000, 16), 4, 3)

		results, stats, err := runFake(t, context.Background(), f, clock, plan)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if len(results) != len(plan.Probes) || stats.Sent != len(plan.Probes) {
			t.Fatalf("got %d results, %d sent; want %d of each", len(results), stats.Sent, len(plan.Probes))
		}
		for _, r := range results {
			want := Answered
			switch {
			case f.dead[r.Tuple.SrcPort] && r.Kind == KindTCPSYN:
				want = Timeout
			case f.unreach[r.Tuple.SrcPort] && r.Kind == KindTCPSYN:
				want = Unreachable
			}
			if r.Outcome != want {
				t.Errorf("%s repeat %d: outcome %s, want %s", r.Tuple, r.Repeat, r.Outcome, want)
			}
		}
		if stats.Unmatched != 0 || stats.Malformed != 0 {
			t.Errorf("stats %+v: want no unmatched or malformed", stats)
		}
	})
}

func TestEngineStopsEarlyWhenAllAnswered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := SystemClock{}
		f := newFakeNet(clock)
		plan := testPlan(ports(30000, 50), 0, 2)
		start := clock.Now()
		if _, _, err := runFake(t, context.Background(), f, clock, plan); err != nil {
			t.Fatal(err)
		}
		// Sending 100 probes at 1000/s takes 0.1 s; without early stop
		// the run would wait a whole timeout after the last probe.
		if elapsed := clock.Now().Sub(start); elapsed >= plan.Timeout {
			t.Errorf("run took %s of virtual time; want it to end before one timeout (%s)", elapsed, plan.Timeout)
		}
	})
}

func TestEngineCountsDuplicatesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := SystemClock{}
		f := newFakeNet(clock)
		f.dup = true
		plan := testPlan(ports(30000, 8), 0, 2)
		results, _, err := runFake(t, context.Background(), f, clock, plan)
		if err != nil {
			t.Fatal(err)
		}
		// The run may end as soon as every first answer is in, so the last
		// second copies may be left unread: each probe has at most one.
		dups := 0
		for _, r := range results {
			if r.Outcome != Answered || r.Duplicates > 1 {
				t.Errorf("%s: outcome %s with %d duplicates; want answered, at most 1", r.Tuple, r.Outcome, r.Duplicates)
			}
			dups += r.Duplicates
		}
		if dups == 0 {
			t.Error("no duplicate counted at all")
		}
	})
}

func TestEngineInterruptGivesPartialResults(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := SystemClock{}
		f := newFakeNet(clock)
		plan := testPlan(ports(30000, 500), 0, 3)
		ctx, cancel := context.WithCancel(context.Background())
		e := &Engine{Sender: f, Receivers: []Receiver{f}, Clock: clock, OnProgress: func(p Progress) {
			if p.Sent >= 100 {
				cancel()
			}
		}}
		results, stats, err := e.Run(ctx, plan)
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(results) == 0 || len(results) >= len(plan.Probes) {
			t.Fatalf("got %d results of %d; want a partial run", len(results), len(plan.Probes))
		}
		if len(results) != stats.Sent {
			t.Errorf("%d results for %d sent probes", len(results), stats.Sent)
		}
		for _, r := range results {
			if r.Outcome == Pending {
				t.Errorf("%s still pending after the run", r.Tuple)
			}
		}
	})
}

func TestEngineRejectsBadPlans(t *testing.T) {
	f := newFakeNet(SystemClock{})
	for name, plan := range map[string]Plan{
		"empty":     {Rate: 1, Timeout: time.Second},
		"zero rate": {Probes: []Probe{{Kind: KindTCPSYN}}, Timeout: time.Second},
		"no wait":   {Probes: []Probe{{Kind: KindTCPSYN}}, Rate: 1},
	} {
		if _, _, err := runFake(t, context.Background(), f, SystemClock{}, plan); err != ErrBadPlan {
			t.Errorf("%s: err = %v, want ErrBadPlan", name, err)
		}
	}
}

// newTestRun sends every probe of a plan on paper, for the matching tests.
func newTestRun(t *testing.T, plan Plan) *run {
	t.Helper()
	r, err := newRun(plan, 7)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Unix(1000, 0)
	for i := range r.results {
		r.results[i].Sent = at
		r.latest[r.results[i].Tuple] = i
		r.sendOrder = append(r.sendOrder, i)
		r.outstanding++
	}
	return r
}

func TestMatchRules(t *testing.T) {
	plan := testPlan(ports(30000, 2), 1, 2)
	at := time.Unix(1000, 0).Add(3 * time.Millisecond)
	probeOf := func(r *run, kind Kind, sport uint16, repeat int) *Result {
		for i := range r.results {
			p := &r.results[i]
			if p.Kind == kind && p.Tuple.SrcPort == sport && p.Repeat == repeat {
				return p
			}
		}
		t.Fatalf("no probe %s sport %d repeat %d", kind, sport, repeat)
		return nil
	}

	t.Run("rst acking seq", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindTCPSYN, 30001, 0)
		rep := synAck(p.Probe)
		rep.Ack, rep.Flags = p.Cookie, packet.FlagRST
		r.handle(Arrival{Reply: rep, At: at})
		if p.Outcome != Answered || p.Detail != "rst" || p.RTT != 3*time.Millisecond {
			t.Errorf("got %s %q rtt %s; want answered rst 3ms", p.Outcome, p.Detail, p.RTT)
		}
	})
	t.Run("bare ack from time-wait goes to newest probe on the tuple", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindTCPSYN, 30000, 1)
		rep := synAck(p.Probe)
		rep.Ack, rep.Flags = 12345, packet.FlagACK
		r.handle(Arrival{Reply: rep, At: at})
		if p.Outcome != Answered || p.Detail != "ack" {
			t.Errorf("got %s %q; want answered ack", p.Outcome, p.Detail)
		}
	})
	t.Run("late reply after timeout", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindTCPSYN, 30000, 0)
		p.Outcome = Timeout
		r.handle(Arrival{Reply: synAck(p.Probe), At: at})
		if p.Outcome != Timeout || p.Late != 1 {
			t.Errorf("got %s late %d; want timeout, late 1", p.Outcome, p.Late)
		}
	})
	t.Run("icmp error quoting an echo", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindICMPEcho, 100, 1)
		r.handle(Arrival{At: at, Reply: packet.Reply{
			Kind: packet.KindICMPError, From: router, To: client, ICMPType: 11,
			Tuple: p.Tuple, QuotedProto: hash.ProtoICMP, EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie),
		}})
		if p.Outcome != Unreachable || p.From != router || p.Detail != "icmp 11/0" {
			t.Errorf("got %s from %s %q; want unreachable from %s", p.Outcome, p.From, p.Detail, router)
		}
	})
	t.Run("icmp error with a wrong cookie is not ours", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindTCPSYN, 30000, 0)
		r.handle(Arrival{At: at, Reply: packet.Reply{
			Kind: packet.KindICMPError, From: router, Tuple: p.Tuple, QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie + 99,
		}})
		if p.Outcome != Pending || r.stats.Unmatched != 1 {
			t.Errorf("got %s, unmatched %d; want pending, 1 unmatched", p.Outcome, r.stats.Unmatched)
		}
	})
	t.Run("segment on a foreign tuple", func(t *testing.T) {
		r := newTestRun(t, plan)
		p := probeOf(r, KindTCPSYN, 30000, 0)
		rep := synAck(p.Probe)
		rep.Tuple.DstPort = 40000
		r.handle(Arrival{Reply: rep, At: at})
		if r.stats.Unmatched != 1 || r.outstanding != len(r.results) {
			t.Errorf("unmatched %d, outstanding %d; want 1 and all", r.stats.Unmatched, r.outstanding)
		}
	})
}

func TestOrderSpacesRepeatsAndInterleavesEcho(t *testing.T) {
	sports := ports(30000, 20)
	plan := testPlan(sports, 5, 3)
	if got, want := len(plan.Probes), (20+5)*3; got != want {
		t.Fatalf("%d probes, want %d", got, want)
	}
	last := map[hash.FiveTuple]int{}
	for i, p := range plan.Probes {
		if j, ok := last[p.Tuple]; ok && i-j < 25 {
			t.Errorf("%s repeated after %d probes; want a whole round (25) apart", p.Tuple, i-j)
		}
		last[p.Tuple] = i
	}
	// Echo probes are spread out: no two echo probes back to back.
	for i := 1; i < len(plan.Probes); i++ {
		if plan.Probes[i].Kind == KindICMPEcho && plan.Probes[i-1].Kind == KindICMPEcho {
			t.Fatalf("echo probes bunched at %d", i)
		}
	}
}

func BenchmarkEngineSendMatch(b *testing.B) {
	sports := ports(20000, 2048)
	for b.Loop() {
		f := newFakeNet(SystemClock{})
		plan := testPlan(sports, 0, 3)
		plan.Rate = 1e7
		e := &Engine{Sender: f, Receivers: []Receiver{f}, Secret: 1}
		if _, _, err := e.Run(context.Background(), plan); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2048*3), "probes/op")
}

// A server whose SYN-ACKs are dropped on the way back stays half-open and
// answers the next SYN on the flow with a bare ACK of the first one. That
// ACK must not make either probe look answered.
func TestHalfOpenAckAnswersNothing(t *testing.T) {
	plan := testPlan(ports(30000, 1), 0, 2)
	r := newTestRun(t, plan)
	first, second := &r.results[0], &r.results[1]
	rep := synAck(first.Probe)
	rep.Flags = packet.FlagACK // ack = first cookie + 1, no SYN
	r.handle(Arrival{Reply: rep, At: time.Unix(1000, 0)})
	if first.Outcome != Pending || second.Outcome != Pending || r.stats.HalfOpen != 1 {
		t.Errorf("outcomes %s/%s, half-open %d; want both pending and 1 half-open ACK",
			first.Outcome, second.Outcome, r.stats.HalfOpen)
	}
}

func TestTraceOrderCoversEveryFlowAndTTL(t *testing.T) {
	dst := netip.AddrPortFrom(server, 3306)
	flows := Tuples(client, dst, ports(30000, 5))
	probes := TraceOrder(flows, 6, 2, rand.New(rand.NewPCG(3, 4)))
	seen := map[hash.FiveTuple]map[uint8]int{}
	for i, p := range probes {
		if seen[p.Tuple] == nil {
			seen[p.Tuple] = map[uint8]int{}
		}
		seen[p.Tuple][p.TTL]++
		if i > 0 && probes[i-1].Tuple == p.Tuple {
			t.Errorf("probe %d: same flow twice in a row", i)
		}
	}
	for _, f := range flows {
		for ttl := uint8(1); ttl <= 6; ttl++ {
			if seen[f][ttl] != 2 {
				t.Errorf("%s TTL %d probed %d times, want 2", f, ttl, seen[f][ttl])
			}
		}
	}
}

// The same, when the half-open connection comes from an earlier run (the
// sweep before a trace): its cookies are passed in Plan.Earlier.
func TestHalfOpenAckOfEarlierRun(t *testing.T) {
	earlier := newTestRun(t, testPlan(ports(30000, 1), 0, 1))
	plan := testPlan(ports(30000, 1), 0, 1)
	plan.Earlier = []Probe{earlier.results[0].Probe}
	r, err := newRun(plan, 99) // another secret: other cookies
	if err != nil {
		t.Fatal(err)
	}
	r.results[0].Sent = time.Unix(1000, 0)
	r.latest[r.results[0].Tuple] = 0
	r.outstanding = 1
	rep := synAck(earlier.results[0].Probe)
	rep.Flags = packet.FlagACK
	r.handle(Arrival{Reply: rep, At: time.Unix(1000, 0)})
	if r.results[0].Outcome != Pending || r.stats.HalfOpen != 1 {
		t.Errorf("outcome %s, half-open %d; want pending and 1 half-open ACK", r.results[0].Outcome, r.stats.HalfOpen)
	}
}
