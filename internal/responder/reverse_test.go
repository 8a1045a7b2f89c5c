package responder

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// fakeReverse is a return path: each flow answers with a time-exceeded
// from router at TTL 1; flows in reach get the client's RST at TTL 2 and
// beyond, the others die after the router.
type fakeReverse struct {
	reach   map[uint16]bool
	replies chan probe.Arrival
	done    chan struct{}
	once    sync.Once

	mu     sync.Mutex
	sent   []probe.Probe
	local  netip.AddrPort
	peer   netip.Addr
	closed bool
}

var returnRouter = netip.MustParseAddr("198.19.9.1")

func (f *fakeReverse) Send(p probe.Probe) (time.Time, error) {
	f.mu.Lock()
	f.sent = append(f.sent, p)
	f.mu.Unlock()
	now := time.Now()
	switch {
	case p.TTL == 1:
		f.replies <- probe.Arrival{At: now, Reply: packet.Reply{Kind: packet.KindICMPError, From: returnRouter, To: p.Tuple.Src,
			ICMPType: 11, Tuple: p.Tuple, QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie}}
	case f.reach[p.Tuple.DstPort]:
		f.replies <- probe.Arrival{At: now, Reply: packet.Reply{Kind: packet.KindTCP, From: p.Tuple.Dst, To: p.Tuple.Src,
			Tuple: p.Tuple.Reverse(), Seq: p.Cookie, Flags: packet.FlagRST}}
	}
	return now, nil
}

func (f *fakeReverse) Receive(ctx context.Context) (probe.Arrival, error) {
	select {
	case a := <-f.replies:
		return a, nil
	case <-ctx.Done():
		return probe.Arrival{}, ctx.Err()
	case <-f.done:
		return probe.Arrival{}, errors.New("closed")
	}
}

func (f *fakeReverse) Receivers() []probe.Receiver { return []probe.Receiver{f} }

func (f *fakeReverse) Close() error {
	f.once.Do(func() { close(f.done) })
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func (f *fakeReverse) open(local netip.AddrPort, peer netip.Addr) (ReverseProber, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.local.IsValid() {
		return nil, errors.New("opened twice")
	}
	f.local, f.peer = local, peer
	return f, nil
}

func newFakeReverse(reach ...uint16) *fakeReverse {
	f := &fakeReverse{reach: map[uint16]bool{}, replies: make(chan probe.Arrival, 1024), done: make(chan struct{})}
	for _, p := range reach {
		f.reach[p] = true
	}
	return f
}

func reverseRequest(run string, sports ...uint16) ReverseRequest {
	return ReverseRequest{Run: run, Sports: sports, MaxTTL: 3, PerHop: 2, Rate: 1000, TimeoutMS: 200}
}

func TestReverseTrace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fr := newFakeReverse(30000)
		h := newHarness(t, Config{OpenReverse: fr.open})
		defer h.srv.Close()
		c := h.client(clientAddr, testToken)
		reg := register(PortRange{30000, 30003})
		if _, err := c.Register(context.Background(), reg); err != nil {
			t.Fatal(err)
		}
		started, err := c.Reverse(context.Background(), reverseRequest(reg.Run, 30000, 30001))
		if err != nil || started.Probes != 2*3*2 {
			t.Fatalf("reverse: %+v, %v", started, err)
		}
		synctest.Wait()
		time.Sleep(2 * time.Second) // virtual: the probes' timeouts pass
		synctest.Wait()
		rep, err := c.Report(context.Background(), reg.Run)
		if err != nil || rep.Return == nil || rep.Return.State != ReverseDone {
			t.Fatalf("report: %+v, %v", rep.Return, err)
		}
		paths := map[uint16][]string{}
		for _, fl := range rep.Return.Flows {
			hops, err := fl.TraceHops()
			if err != nil {
				t.Fatal(err)
			}
			for _, hp := range hops {
				s := "*"
				if hp.Reached {
					s = "client"
				} else if hp.Addr.IsValid() {
					s = hp.Addr.String()
				}
				paths[fl.Sport] = append(paths[fl.Sport], s)
			}
		}
		// The answers' tuples were looked up: the server's gateway.
		if gw, err := rep.Return.FirstHop(); err != nil || gw != testGateway {
			t.Errorf("gateway %v, %v; want %v", gw, err, testGateway)
		}
		if got := strings.Join(paths[30000], " "); got != "198.19.9.1 client" {
			t.Errorf("flow 30000 returns by %q, want the router then the client", got)
		}
		if got := strings.Join(paths[30001], " "); got != "198.19.9.1 * *" {
			t.Errorf("flow 30001 returns by %q, want the router then silence", got)
		}
		// Every probe went to the registered client's registered ports,
		// from the run's target, shaped like its answers.
		fr.mu.Lock()
		defer fr.mu.Unlock()
		if fr.local != netip.AddrPortFrom(serverAddr, 3306) || fr.peer != clientAddr || !fr.closed {
			t.Errorf("opened %s -> %s (closed %v)", fr.local, fr.peer, fr.closed)
		}
		for _, p := range fr.sent {
			if p.Kind != probe.KindTCPSYNACK || p.Tuple.Src != serverAddr || p.Tuple.SrcPort != 3306 || p.Tuple.Dst != clientAddr ||
				(p.Tuple.DstPort != 30000 && p.Tuple.DstPort != 30001) || p.TTL < 1 || p.TTL > 3 {
				t.Errorf("sent %s %v TTL %d", p.Kind, p.Tuple, p.TTL)
			}
		}
		// A retried request starts nothing new.
		if again, err := c.Reverse(context.Background(), reverseRequest(reg.Run, 30000, 30001)); err != nil || again != started {
			t.Errorf("retried reverse: %+v, %v", again, err)
		}
	})
}

// Every out-of-scope reverse request is refused before a socket is opened.
func TestReverseRefusals(t *testing.T) {
	other := netip.MustParseAddr("198.18.1.9")
	for _, c := range []struct {
		name string
		cfg  Config
		peer netip.Addr
		edit func(*ReverseRequest)
		want string
	}{
		{"another peer's run", Config{}, other, func(*ReverseRequest) {}, "no such run"},
		{"unknown run", Config{}, clientAddr, func(r *ReverseRequest) { r.Run = NewRunID() }, "no such run"},
		{"unregistered port", Config{}, clientAddr, func(r *ReverseRequest) { r.Sports = []uint16{30000, 40000} }, "not one of the run's"},
		{"too many flows", Config{}, clientAddr, func(r *ReverseRequest) {
			r.Sports = nil
			for p := range uint16(65) {
				r.Sports = append(r.Sports, 30000+p)
			}
		}, "at most 64"},
		{"TTL too high", Config{}, clientAddr, func(r *ReverseRequest) { r.MaxTTL = 33 }, "max_ttl"},
		{"too many per hop", Config{}, clientAddr, func(r *ReverseRequest) { r.PerHop = 4 }, "per_hop"},
		{"too patient", Config{}, clientAddr, func(r *ReverseRequest) { r.PatienceMS = MaxReversePatienceMS + 1 }, "patience_ms"},
		{"patience past the run's end", Config{}, clientAddr, func(r *ReverseRequest) { r.PatienceMS = MaxReversePatienceMS }, "past the run's end"},
		{"past the run's end", Config{ProbeRate: 1}, clientAddr, func(*ReverseRequest) {}, "past the run's end"},
		{"repeated port", Config{}, clientAddr, func(r *ReverseRequest) { r.Sports = []uint16{30000, 30000} }, "repeated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fr := newFakeReverse()
			c.cfg.OpenReverse = fr.open
			h := newHarness(t, c.cfg)
			defer h.srv.Close()
			reg := register(PortRange{30000, 30099})
			if _, err := h.client(clientAddr, testToken).Register(context.Background(), reg); err != nil {
				t.Fatal(err)
			}
			req := reverseRequest(reg.Run, 30000, 30001)
			c.edit(&req)
			_, err := h.client(c.peer, testToken).Reverse(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want a refusal saying %q", err, c.want)
			}
			if fr.local.IsValid() || len(fr.sent) > 0 {
				t.Errorf("opened %s and sent %d probes", fr.local, len(fr.sent))
			}
		})
	}
}

func TestReverseWithoutRawSockets(t *testing.T) {
	h := newHarness(t, Config{OpenReverse: func(netip.AddrPort, netip.Addr) (ReverseProber, error) {
		return nil, probe.ErrPermission
	}})
	defer h.srv.Close()
	c := h.client(clientAddr, testToken)
	reg := register(PortRange{30000, 30001})
	if _, err := c.Register(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	_, err := c.Reverse(context.Background(), reverseRequest(reg.Run, 30000))
	if err == nil || !strings.Contains(err.Error(), ErrCannotProbe.Error()) {
		t.Errorf("got %v, want %v", err, ErrCannotProbe)
	}
}

func TestReturnHopsRoundTrip(t *testing.T) {
	hops := WireHops(nil)
	if len(hops) != 0 {
		t.Fatal(hops)
	}
	for _, bad := range []ReturnFlow{
		{Sport: 1, Hops: []ReturnHop{{TTL: 2}}},
		{Sport: 1, Hops: []ReturnHop{{TTL: 1, Addr: "nope"}}},
		{Sport: 1, Hops: []ReturnHop{{TTL: 1, Probes: 1, Answers: 2}}},
		{Sport: 1, Hops: []ReturnHop{{TTL: 1, Reached: true}}},
		{Sport: 1, Hops: []ReturnHop{{TTL: 1, Addr: "198.18.1.1", Reached: true}, {TTL: 2}}},
		{Sport: 1, Hops: []ReturnHop{{TTL: 1, Addr: "fe80::1%eth0"}}},
	} {
		if _, err := bad.TraceHops(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%+v: got %v, want ErrMalformed", bad, err)
		}
	}
}

func TestReverseRetriedBounds(t *testing.T) {
	good := ReverseRetried{TTLs: []int{1, 2}, Holes: 40, Rounds: 10, Probes: 30, Answers: 12}
	if r, err := good.Retried(); err != nil || r.Answers != 12 || len(r.TTLs) != 2 {
		t.Fatalf("%+v: %v", r, err)
	}
	for name, bad := range map[string]ReverseRetried{
		"more answers than probes": {TTLs: []int{1}, Probes: 3, Answers: 4},
		"negative holes":           {Holes: -1},
		"TTL 0":                    {TTLs: []int{0}},
		"TTL past the bound":       {TTLs: []int{MaxReverseTTL + 1}},
		"too many rounds":          {Rounds: 1000},
		"too many probes":          {Probes: 1 << 30},
	} {
		if _, err := bad.Retried(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// The gateway on the wire reads back as an address, or is refused.
func TestReturnTracesFirstHop(t *testing.T) {
	for _, c := range []struct {
		wire string
		want netip.Addr
		bad  bool
	}{
		{"", netip.Addr{}, false},
		{"198.19.9.1", testGateway, false},
		{"fe80::1", netip.MustParseAddr("fe80::1"), false},
		{"not an address", netip.Addr{}, true},
		{"198.19.9.1:80", netip.Addr{}, true},
	} {
		got, err := ReturnTraces{Gateway: c.wire}.FirstHop()
		if got != c.want || (err != nil) != c.bad || (err != nil && !errors.Is(err, ErrMalformed)) {
			t.Errorf("%q: %v, %v", c.wire, got, err)
		}
	}
}
