package probe

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

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
		Probes:  NewRounds(Tuples(client, dst, sports), KindTCPSYN, echo, count, rng),
		Rate:    1000,
		Timeout: time.Second,
		Grace:   100 * time.Millisecond,
	}
}

func runFake(t *testing.T, ctx context.Context, f *fakeNet, clock Clock, plan Plan) ([]Result, Stats, error) {
	t.Helper()
	e := &Engine{Sender: f, Receivers: []Receiver{f}, Clock: clock, Secret: 42}
	var c Results
	stats, err := e.Run(ctx, plan, &c)
	return c.List, stats, err
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
		if len(results) != plan.Probes.Len() || stats.Sent != plan.Probes.Len() {
			t.Fatalf("got %d results, %d sent; want %d of each", len(results), stats.Sent, plan.Probes.Len())
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
		var c Results
		stats, err := e.Run(ctx, plan, &c)
		results := c.List
		if err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if len(results) == 0 || len(results) >= plan.Probes.Len() {
			t.Fatalf("got %d results of %d; want a partial run", len(results), plan.Probes.Len())
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
		"empty":     {Probes: List{}, Rate: 1, Timeout: time.Second},
		"no source": {Rate: 1, Timeout: time.Second},
		"zero rate": {Probes: List{{Kind: KindTCPSYN}}, Timeout: time.Second},
		"no wait":   {Probes: List{{Kind: KindTCPSYN}}, Rate: 1},
	} {
		if _, _, err := runFake(t, context.Background(), f, SystemClock{}, plan); err != ErrBadPlan {
			t.Errorf("%s: err = %v, want ErrBadPlan", name, err)
		}
	}
}

// paperRun sends every probe of a plan on paper, for the matching tests:
// the records are in the window as if the sender had put them on the wire.
type paperRun struct {
	*run
	got Results
}

func newPaperRun(t *testing.T, plan Plan, secret uint64) *paperRun {
	t.Helper()
	pr := &paperRun{}
	pr.run = newRun(plan, secret, &pr.got, 1, time.Unix(1000, 0))
	for i := 0; i < plan.Probes.Len(); i++ {
		pr.window.push(record{})
		pr.next++
		pr.outstanding++
	}
	return pr
}

// paperProbe is one probe of a paper run: what was sent, and what its
// record says now.
type paperProbe struct {
	r *paperRun
	k int
	Probe
}

func (p paperProbe) res() Result { return p.r.resultOf(p.r.base+p.k, p.r.window.at(p.k)) }

// probe finds a probe of the paper run.
func (pr *paperRun) probe(t *testing.T, kind Kind, sport uint16, repeat int) paperProbe {
	t.Helper()
	for k := range pr.window.len() {
		p := pr.resultOf(pr.base+k, pr.window.at(k)).Probe
		if p.Kind == kind && p.Tuple.SrcPort == sport && p.Repeat == repeat {
			return paperProbe{pr, k, p}
		}
	}
	t.Fatalf("no probe %s sport %d repeat %d", kind, sport, repeat)
	return paperProbe{}
}

func (pr *paperRun) at(k int) paperProbe {
	return paperProbe{pr, k, pr.resultOf(pr.base+k, pr.window.at(k)).Probe}
}

func TestMatchRules(t *testing.T) {
	plan := testPlan(ports(30000, 2), 1, 2)
	at := time.Unix(1000, 0).Add(3 * time.Millisecond)

	t.Run("syn-ack", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30001, 1)
		r.handle(Arrival{Reply: synAck(p.Probe), At: at}, 0)
		if res := p.res(); res.Outcome != Answered || res.Detail != "syn-ack" || res.RTT != 3*time.Millisecond {
			t.Errorf("got %s %q rtt %s; want answered syn-ack 3ms", res.Outcome, res.Detail, res.RTT)
		}
	})
	t.Run("rst acking seq", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30001, 0)
		rep := synAck(p.Probe)
		rep.Ack, rep.Flags = p.Cookie, packet.FlagRST
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if res := p.res(); res.Outcome != Answered || res.Detail != "rst" || res.RTT != 3*time.Millisecond {
			t.Errorf("got %s %q rtt %s; want answered rst 3ms", res.Outcome, res.Detail, res.RTT)
		}
	})
	t.Run("syn-ack with a foreign ack is unmatched", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30000, 1)
		rep := synAck(p.Probe)
		rep.Ack = p.Cookie + 77
		r.handle(Arrival{Reply: rep, At: at}, 0)
		rep.Flags = packet.FlagRST | packet.FlagACK
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if r.outstanding != plan.Probes.Len() || r.stats.Unmatched != 2 {
			t.Errorf("outstanding %d, unmatched %d; want nothing answered and 2 unmatched", r.outstanding, r.stats.Unmatched)
		}
	})
	t.Run("ack of another flow's cookie is unmatched", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		other := r.probe(t, KindTCPSYN, 30001, 0)
		p := r.probe(t, KindTCPSYN, 30000, 0)
		rep := synAck(p.Probe)
		rep.Ack = other.Cookie + 1
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if p.res().Outcome != Pending || other.res().Outcome != Pending || r.stats.Unmatched != 1 {
			t.Errorf("outcomes %s/%s unmatched %d; want both pending, 1 unmatched", p.res().Outcome, other.res().Outcome, r.stats.Unmatched)
		}
	})
	t.Run("bare ack of a SYN we did not send answers nothing", func(t *testing.T) {
		// A server still half-open from an earlier invocation (or in
		// TIME_WAIT) acknowledges that old SYN. On a path that drops
		// SYN-ACKs it is all that comes back: it must not pass for an answer.
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30000, 1)
		rep := synAck(p.Probe)
		rep.Ack, rep.Flags = 12345, packet.FlagACK
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if res := p.res(); res.Outcome != Pending || r.stats.HalfOpen != 1 {
			t.Errorf("got %s, half-open %d; want pending and the ACK counted as half-open", res.Outcome, r.stats.HalfOpen)
		}
	})
	t.Run("late reply after timeout", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30000, 0)
		r.window.at(p.k).outcome = Timeout
		r.handle(Arrival{Reply: synAck(p.Probe), At: at}, 0)
		if res := p.res(); res.Outcome != Timeout || res.Late != 1 {
			t.Errorf("got %s late %d; want timeout, late 1", res.Outcome, res.Late)
		}
	})
	t.Run("late reply after the probe was collected", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		first := r.at(0).Probe
		r.window.at(0).outcome = Timeout
		r.outstanding--
		r.popFront()
		r.handle(Arrival{Reply: synAck(first), At: at}, 0)
		if len(r.got.List) != 1 || len(r.got.Lates) != 1 || r.got.Lates[0].Tuple != first.Tuple {
			t.Errorf("collected %d, lates %v; want the first probe collected, then late", len(r.got.List), r.got.Lates)
		}
	})
	t.Run("echo reply", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindICMPEcho, 100, 1)
		r.handle(Arrival{At: at, Reply: packet.Reply{
			Kind: packet.KindEchoReply, From: server, To: client, EchoID: 100, EchoSeq: uint16(p.Cookie),
		}}, 0)
		if res := p.res(); res.Outcome != Answered || res.Detail != "echo-reply" {
			t.Errorf("got %s %q; want answered echo-reply", res.Outcome, res.Detail)
		}
	})
	t.Run("icmp error quoting an echo", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindICMPEcho, 100, 1)
		r.handle(Arrival{At: at, Reply: packet.Reply{
			Kind: packet.KindICMPError, From: router, To: client, ICMPType: 11,
			Tuple: p.Tuple, QuotedProto: hash.ProtoICMP, EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie),
		}}, 0)
		if res := p.res(); res.Outcome != Unreachable || res.From != router || res.Detail != "icmp 11/0" {
			t.Errorf("got %s from %s %q; want unreachable from %s", res.Outcome, res.From, res.Detail, router)
		}
	})
	t.Run("icmp error with a wrong cookie is not ours", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30000, 0)
		r.handle(Arrival{At: at, Reply: packet.Reply{
			Kind: packet.KindICMPError, From: router, Tuple: p.Tuple, QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie + 99,
		}}, 0)
		if p.res().Outcome != Pending || r.stats.Unmatched != 1 {
			t.Errorf("got %s, unmatched %d; want pending, 1 unmatched", p.res().Outcome, r.stats.Unmatched)
		}
	})
	t.Run("segment on a foreign tuple", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30000, 0)
		rep := synAck(p.Probe)
		rep.Tuple.DstPort = 40000
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if r.stats.Unmatched != 1 || r.outstanding != plan.Probes.Len() {
			t.Errorf("unmatched %d, outstanding %d; want 1 and all", r.stats.Unmatched, r.outstanding)
		}
	})
	t.Run("local connect failure is a send failure", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		p := r.probe(t, KindTCPSYN, 30001, 0)
		a, _ := replyFor(p.Probe, syscall.EADDRINUSE)
		r.handle(a, 0)
		if res := p.res(); res.Outcome != SendFailed || res.Cause != CausePortInUse || r.stats.SendFailures[CausePortInUse].Count != 1 {
			t.Errorf("got %s cause %q, failures %v; want send-failed, port-in-use", res.Outcome, res.Cause, r.stats.SendFailures)
		}
	})
	t.Run("drop counter", func(t *testing.T) {
		r := newPaperRun(t, plan, 7)
		r.handle(Arrival{Reply: packet.Reply{Kind: packet.KindTCP}, Dropped: 5}, 0)
		r.handle(Arrival{Reply: packet.Reply{Kind: packet.KindTCP}, Dropped: 3}, 0)
		if st := r.close(); st.LocalDrops != 5 {
			t.Errorf("local drops %d, want 5 (the socket's counter is cumulative)", st.LocalDrops)
		}
	})
}

// Reverse probes (a responder's SYN-ACKs from the server's port) are
// answered by the client's RST, whose sequence number is the probe's ack,
// and by routers' errors quoting the probe's sequence number.
func TestReverseProbeMatching(t *testing.T) {
	flows := []hash.FiveTuple{
		{Src: server, Dst: client, Proto: hash.ProtoTCP, SrcPort: 3306, DstPort: 30000},
		{Src: server, Dst: client, Proto: hash.ProtoTCP, SrcPort: 3306, DstPort: 30001},
	}
	plan := Plan{Probes: NewReverseRounds(flows, 3, 1, rand.New(rand.NewPCG(1, 2))), Rate: 1000, Timeout: time.Second}
	at := time.Unix(1000, 0).Add(2 * time.Millisecond)
	find := func(r *paperRun, dport uint16, ttl uint8) paperProbe {
		for k := range r.window.len() {
			if p := r.at(k); p.Tuple.DstPort == dport && p.TTL == ttl {
				if p.Kind != KindTCPSYNACK {
					t.Fatalf("reverse rounds send %s, want tcp-synack", p.Kind)
				}
				return p
			}
		}
		t.Fatalf("no probe to %d at TTL %d", dport, ttl)
		return paperProbe{}
	}
	rst := func(p Probe, seq uint32) packet.Reply {
		return packet.Reply{Kind: packet.KindTCP, From: client, To: server, Tuple: p.Tuple.Reverse(), Seq: seq, Flags: packet.FlagRST}
	}
	t.Run("the client's rst", func(t *testing.T) {
		r := newPaperRun(t, plan, 9)
		p := find(r, 30001, 3)
		r.handle(Arrival{Reply: rst(p.Probe, p.Cookie), At: at}, 0)
		if res := p.res(); res.Outcome != Answered || res.Detail != "rst" {
			t.Errorf("got %s %q; want answered rst", res.Outcome, res.Detail)
		}
	})
	t.Run("a rst with another cookie", func(t *testing.T) {
		r := newPaperRun(t, plan, 9)
		p, other := find(r, 30001, 3), find(r, 30000, 3)
		r.handle(Arrival{Reply: rst(p.Probe, other.Cookie), At: at}, 0)
		if p.res().Outcome != Pending || other.res().Outcome != Pending || r.stats.Unmatched != 1 {
			t.Errorf("outcomes %s/%s, unmatched %d; want both pending and 1 unmatched", p.res().Outcome, other.res().Outcome, r.stats.Unmatched)
		}
	})
	t.Run("a router's time-exceeded", func(t *testing.T) {
		r := newPaperRun(t, plan, 9)
		p := find(r, 30000, 1)
		r.handle(Arrival{At: at, Reply: packet.Reply{Kind: packet.KindICMPError, From: router, To: server, ICMPType: 11,
			Tuple: p.Tuple, QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie}}, 0)
		if res := p.res(); res.Outcome != Unreachable || res.From != router {
			t.Errorf("got %s from %s; want an ICMP answer from %s", res.Outcome, res.From, router)
		}
	})
	t.Run("a forward probe's rst without ack is not matched by seq", func(t *testing.T) {
		r := newPaperRun(t, testPlan(ports(30000, 1), 0, 1), 9)
		p := r.probe(t, KindTCPSYN, 30000, 0)
		rep := synAck(p.Probe)
		rep.Ack, rep.Seq, rep.Flags = 0, p.Cookie, packet.FlagRST
		r.handle(Arrival{Reply: rep, At: at}, 0)
		if p.res().Outcome != Pending {
			t.Errorf("got %s; a RST without ACK answers only a reverse probe", p.res().Outcome)
		}
	})
}

func TestOrderSpacesRepeatsAndInterleavesEcho(t *testing.T) {
	sports := ports(30000, 20)
	plan := testPlan(sports, 5, 3)
	if got, want := plan.Probes.Len(), (20+5)*3; got != want {
		t.Fatalf("%d probes, want %d", got, want)
	}
	last := map[hash.FiveTuple]int{}
	count := map[hash.FiveTuple]int{}
	for i := range plan.Probes.Len() {
		p := plan.Probes.At(i)
		count[p.Tuple]++
		if p.Kind == KindICMPEcho {
			if j, ok := plan.Probes.EchoIndex(p.Tuple, p.Repeat); !ok || j != i {
				t.Errorf("EchoIndex(%s, %d) = %d, %v; want %d", p.Tuple, p.Repeat, j, ok, i)
			}
		}
		if j, ok := last[p.Tuple]; ok && i-j < 25 {
			t.Errorf("%s repeated after %d probes; want a whole round (25) apart", p.Tuple, i-j)
		}
		last[p.Tuple] = i
	}
	if len(count) != 25 {
		t.Errorf("%d distinct flows, want 25", len(count))
	}
	for tu, n := range count {
		if n != 3 {
			t.Errorf("%s probed %d times, want 3", tu, n)
		}
	}
	// Echo probes are spread out: no two echo probes back to back.
	for i := 1; i < plan.Probes.Len(); i++ {
		if plan.Probes.At(i).Kind == KindICMPEcho && plan.Probes.At(i-1).Kind == KindICMPEcho {
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
		if _, err := e.Run(context.Background(), plan, discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(2048*3), "probes/op")
}

type discard struct{}

func (discard) Collect(Result) {}
func (discard) Late(Probe)     {}

// A server whose SYN-ACKs are dropped on the way back stays half-open and
// answers the next SYN on the flow with a bare ACK of the first one. That
// ACK must not make either probe look answered.
func TestHalfOpenAckAnswersNothing(t *testing.T) {
	r := newPaperRun(t, testPlan(ports(30000, 1), 0, 2), 7)
	first, second := r.at(0), r.at(1)
	rep := synAck(first.Probe)
	rep.Flags = packet.FlagACK // ack = first cookie + 1, no SYN
	r.handle(Arrival{Reply: rep, At: time.Unix(1000, 0)}, 0)
	if first.res().Outcome != Pending || second.res().Outcome != Pending || r.stats.HalfOpen != 1 {
		t.Errorf("outcomes %s/%s, half-open %d; want both pending and 1 half-open ACK",
			first.res().Outcome, second.res().Outcome, r.stats.HalfOpen)
	}
}

func TestTraceOrderCoversEveryFlowAndTTL(t *testing.T) {
	for _, n := range []uint16{1, 2, 3, 5, 16} {
		traceOrderCovers(t, n)
	}
}

// TestTraceOrderDiffersByTTL: each TTL takes the flows in an order of its
// own, so the few answers of a rate-limited router fall on other flows at
// each hop.
func TestTraceOrderDiffersByTTL(t *testing.T) {
	flows := Tuples(client, netip.AddrPortFrom(server, 3306), ports(30000, 32))
	src := NewTraceRounds(flows, 4, 1, rand.New(rand.NewPCG(3, 4)))
	firsts := map[hash.FiveTuple]int{} // flows among the first 6 probes of a TTL
	for ttl := range 4 {
		for k := range 6 {
			firsts[src.At(ttl*32+k).Tuple]++
		}
	}
	if len(firsts) < 12 {
		t.Errorf("the first 6 probes of 4 TTLs went to %d flows: the same few lead every TTL", len(firsts))
	}
}

func traceOrderCovers(t *testing.T, n uint16) {
	dst := netip.AddrPortFrom(server, 3306)
	flows := Tuples(client, dst, ports(30000, int(n)))
	src := NewTraceRounds(flows, 6, 2, rand.New(rand.NewPCG(3, 4)))
	seen := map[hash.FiveTuple]map[uint8]int{}
	for i := range src.Len() {
		p := src.At(i)
		if seen[p.Tuple] == nil {
			seen[p.Tuple] = map[uint8]int{}
		}
		seen[p.Tuple][p.TTL]++
		if i > 0 && n > 1 && src.At(i-1).Tuple == p.Tuple {
			t.Errorf("%d flows, probe %d: same flow twice in a row", n, i)
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
// sweep before a trace, or the previous invocation in a loop), and a late
// SYN-ACK of that run answers nothing either.
func TestRepliesToAnEarlierRun(t *testing.T) {
	earlier := newPaperRun(t, testPlan(ports(30000, 1), 0, 1), 7)
	old := earlier.at(0).Probe
	r := newPaperRun(t, testPlan(ports(30000, 1), 0, 1), 99) // another secret: other cookies
	rep := synAck(old)
	rep.Flags = packet.FlagACK
	r.handle(Arrival{Reply: rep, At: time.Unix(1000, 0)}, 0)
	r.handle(Arrival{Reply: synAck(old), At: time.Unix(1000, 0)}, 0)
	if r.at(0).res().Outcome != Pending || r.stats.HalfOpen != 1 || r.stats.Unmatched != 1 {
		t.Errorf("outcome %s, half-open %d, unmatched %d; want pending, 1 half-open ACK, 1 unmatched",
			r.at(0).res().Outcome, r.stats.HalfOpen, r.stats.Unmatched)
	}
}

func TestCookiesRoundTrip(t *testing.T) {
	for _, key := range []cookieKey{0, 1, 0xdeadbeefcafe} {
		seen := map[uint32]bool{}
		for i := uint32(0); i < 70000; i += 7 {
			c := key.seal(i, 32)
			if key.open(c, 32) != i || seen[c] {
				t.Fatalf("key %x: index %d -> %d does not round-trip uniquely", key, i, c)
			}
			seen[c] = true
			if i < 1<<16 {
				if c16 := key.seal(i, 16); c16 > 0xffff || key.open(c16, 16) != i {
					t.Fatalf("key %x: 16-bit %d -> %d does not round-trip", key, i, c16)
				}
			}
		}
	}
}

// Memory follows the probes in flight, not the probes sent: a long run
// keeps a window of about rate x timeout records.
func TestEngineWindowIsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := SystemClock{}
		f := newFakeNet(clock)
		f.dead[30001] = true
		plan := testPlan(ports(30000, 4), 0, 2000)
		plan.Rate, plan.Timeout = 1000, 100*time.Millisecond
		e := &Engine{Sender: f, Receivers: []Receiver{f}, Clock: clock, Secret: 3}
		c := &countingCollector{}
		st, err := e.Run(context.Background(), plan, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.n != 8000 || st.Sent != 8000 || c.lost != 2000 {
			t.Fatalf("collected %d (%d lost), sent %d; want 8000 with the 2000 of the dead port lost", c.n, c.lost, st.Sent)
		}
		// 100 probes per timeout, plus one sweep tick and the burst allowance.
		if st.PeakInFlight > 2*100 {
			t.Errorf("peak window %d records; want about rate x timeout = 100", st.PeakInFlight)
		}
	})
}

type countingCollector struct{ n, lost int }

func (c *countingCollector) Collect(r Result) {
	c.n++
	if r.Outcome == Timeout {
		c.lost++
	}
}
func (c *countingCollector) Late(Probe) {}

func TestWindowRingKeepsOrderAcrossGrowth(t *testing.T) {
	var w window
	next, want := 0, 0
	for round := range 50 {
		for range 3 + round%7 {
			w.push(record{late: uint32(next)})
			next++
		}
		for range 2 + round%5 {
			if w.len() == 0 {
				break
			}
			if got := int(w.pop().late); got != want {
				t.Fatalf("popped %d, want %d", got, want)
			}
			want++
		}
	}
	for k := range w.len() {
		if got := int(w.at(k).late); got != want+k {
			t.Fatalf("at(%d) = %d, want %d", k, got, want+k)
		}
	}
}

// Results is a Collector that keeps every result, for the tests.
type Results struct {
	List  []Result
	Lates []Probe
}

var _ Collector = (*Results)(nil)

func (c *Results) Collect(r Result) { c.List = append(c.List, r) }
func (c *Results) Late(p Probe)     { c.Lates = append(c.Lates, p) }

// A SYN's sequence number names its probe to whoever holds the run's
// secret (a responder's arrivals, told apart by probe).
func TestProbeOfDecodesSYNs(t *testing.T) {
	src := testPlan(ports(30000, 8), 2, 3).Probes
	const secret = 99
	for i := range src.Len() {
		p := src.At(i)
		got, ok := ProbeOf(secret, src, cookieKey(secret).cookieOf(p, i))
		if want := p.Kind == KindTCPSYN; ok != want || (ok && got != p) {
			t.Fatalf("probe %d (%s): decoded %v %v", i, p.Kind, got, ok)
		}
	}
	hits := 0
	for seq := uint32(0); seq < 1000; seq++ {
		if _, ok := ProbeOf(secret+1, src, cookieKey(secret).cookieOf(src.At(0), int(seq))); ok {
			hits++
		}
	}
	if hits > 5 {
		t.Errorf("another run's secret decodes %d of 1000 sequence numbers to probes", hits)
	}
}

// TestRecordStaysSmall: the window holds rate x timeout records, so a
// field added to one must not grow it past 64 bytes.
func TestRecordStaysSmall(t *testing.T) {
	if n := unsafe.Sizeof(record{}); n > 64 {
		t.Errorf("record is %d bytes, want at most 64", n)
	}
}

// TestReplyIPID: an error whose identification copies the probe's tells
// nothing of the router's counter.
func TestReplyIPID(t *testing.T) {
	for _, c := range []struct {
		r    packet.Reply
		want uint16
	}{
		{packet.Reply{Kind: packet.KindICMPError, IPID: 0x1234, QuotedIPID: 0x4321}, 0x1234},
		{packet.Reply{Kind: packet.KindICMPError, IPID: 0x4321, QuotedIPID: 0x4321}, 0},
		{packet.Reply{Kind: packet.KindTCP, IPID: 0x4321}, 0x4321},
	} {
		if got := replyIPID(c.r); got != c.want {
			t.Errorf("replyIPID(%+v) = %#x, want %#x", c.r, got, c.want)
		}
	}
}
