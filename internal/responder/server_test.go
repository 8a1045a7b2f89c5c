package responder

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/rawsock"
	"github.com/ecmpscan/ecmpscan/internal/route"
)

var (
	testToken  = []byte(strings.Repeat("k", 40))
	clientAddr = netip.MustParseAddr("198.18.1.1")
	serverAddr = netip.MustParseAddr("198.18.2.2")
	t0         = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
)

// pipeConn is one end of a net.Pipe that says it comes from addr.
type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

// harness runs a server whose control connections are pipes from a given
// peer, with a log and a fixed clock.
type harness struct {
	t   *testing.T
	srv *Server
	mu  sync.Mutex
	log []string
	now time.Time
}

// testGateway is the server's gateway in the harness's routing table.
var testGateway = netip.MustParseAddr("198.19.9.1")

func newHarness(t *testing.T, cfg Config) *harness {
	h := &harness{t: t, now: t0}
	if cfg.Token == nil {
		cfg.Token = testToken
	}
	cfg.IsLocal = func(a netip.Addr) bool { return a == serverAddr }
	cfg.Now = func() time.Time { h.mu.Lock(); defer h.mu.Unlock(); return h.now }
	cfg.Log = func(s string) { h.mu.Lock(); defer h.mu.Unlock(); h.log = append(h.log, s) }
	if cfg.FirstHop == nil {
		// The harness's routing table: the server's gateway toward the
		// client, for every flow.
		cfg.FirstHop = func(_ context.Context, q route.Query) (route.Route, error) {
			if q.Src != serverAddr || q.Dst != clientAddr || q.Sport != 3306 || q.Proto != hash.ProtoTCP {
				return route.Route{}, route.ErrNoRoute
			}
			return route.Route{Gateway: testGateway}, nil
		}
	}
	srv, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	return h
}

// dialer connects a client to the server as peer.
func (h *harness) dialer(peer netip.Addr) func(context.Context, string, string) (net.Conn, error) {
	return func(context.Context, string, string) (net.Conn, error) {
		a, b := net.Pipe()
		go h.srv.handle(pipeConn{Conn: b, remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(peer, 40000))})
		return a, nil
	}
}

func (h *harness) client(peer netip.Addr, token []byte) *Client {
	return &Client{Addr: "responder", Token: token, Dial: h.dialer(peer), Attempts: 1, Now: func() time.Time { return h.now }}
}

func (h *harness) logged(s string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, l := range h.log {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (h *harness) runs() int {
	h.srv.mu.Lock()
	defer h.srv.mu.Unlock()
	return len(h.srv.runs)
}

func register(ports ...PortRange) Register {
	return Register{Run: NewRunID(), Client: clientAddr.String(), Target: netip.AddrPortFrom(serverAddr, 3306).String(), Sports: ports, DurationMS: 10000}
}

// synPacket builds an IPv4 SYN as a raw TCP socket delivers it.
func synPacket(src netip.Addr, sport, dport uint16, ttl uint8, flags byte) []byte {
	b := make([]byte, 40)
	b[0], b[8], b[9] = 0x45, ttl, 6
	copy(b[12:16], src.AsSlice())
	copy(b[16:20], serverAddr.AsSlice())
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	b[32], b[33] = 5<<4, flags
	return b
}

// fakeCapture delivers packets, then blocks until closed. Each Receive
// says so on calls first: the loop is back for more, so what it got before
// is recorded.
type fakeCapture struct {
	packets chan rawsock.Packet
	calls   chan struct{}
	done    chan struct{}
	once    sync.Once
}

func (c *fakeCapture) Receive(ctx context.Context, _ []byte) (rawsock.Packet, error) {
	c.calls <- struct{}{}
	select {
	case p := <-c.packets:
		return p, nil
	case <-ctx.Done():
		return rawsock.Packet{}, ctx.Err()
	case <-c.done:
		return rawsock.Packet{}, errors.New("closed")
	}
}
func (c *fakeCapture) Close() error { c.once.Do(func() { close(c.done) }); return nil }
func (c *fakeCapture) V6() bool     { return false }

func TestRegisterWatchReport(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.client(clientAddr, testToken)
	reg := register(PortRange{30000, 30003})
	got, err := c.Register(context.Background(), reg)
	if err != nil || got.Run != reg.Run {
		t.Fatalf("register: %+v, %v", got, err)
	}
	// Arrivals as the capture loop records them: two SYNs on 30001, one
	// on 30003, and packets that are not this run's.
	for _, p := range [][]byte{
		synPacket(clientAddr, 30001, 3306, 61, 0x02),
		synPacket(clientAddr, 30001, 3306, 61, 0x02),
		synPacket(clientAddr, 30003, 3306, 60, 0x02),
		synPacket(clientAddr, 30002, 3306, 61, 0x12),                        // a SYN-ACK
		synPacket(clientAddr, 30002, 80, 61, 0x02),                          // another port
		synPacket(netip.MustParseAddr("198.18.1.9"), 30002, 3306, 61, 0x02), // another host
		synPacket(clientAddr, 40000, 3306, 61, 0x02),                        // not registered
	} {
		if s, err := parseSYN(p, false, netip.Addr{}, 0); err == nil {
			h.srv.record(s, t0.Add(time.Second), 0)
		}
	}
	rep, err := c.Report(context.Background(), reg.Run)
	if err != nil {
		t.Fatal(err)
	}
	ms := t0.Add(time.Second).UnixMilli()
	want := []Arrival{{Sport: 30001, Count: 2, FirstMS: ms, TTL: 61, Probes: []ProbeArrival{{MS: ms, TTL: 61}, {MS: ms, TTL: 61}}},
		{Sport: 30003, Count: 1, FirstMS: ms, TTL: 60, Probes: []ProbeArrival{{MS: ms, TTL: 60}}}}
	if !reflect.DeepEqual(rep.Arrivals, want) {
		t.Errorf("arrivals %+v, want %+v", rep.Arrivals, want)
	}
	// A retried register finds the same run.
	if again, err := c.Register(context.Background(), reg); err != nil || again.Run != reg.Run || h.runs() != 1 {
		t.Errorf("retried register: %+v %v, %d runs", again, err, h.runs())
	}
}

func TestCaptureLoop(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.client(clientAddr, testToken)
	reg := register(PortRange{30000, 30000})
	if _, err := c.Register(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	capt := &fakeCapture{packets: make(chan rawsock.Packet, 1), calls: make(chan struct{}, 4), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	ln := &fakeListener{closed: make(chan struct{})}
	done := make(chan error)
	go func() { done <- h.srv.Serve(ctx, ln, capt) }()
	<-capt.calls
	capt.packets <- rawsock.Packet{Data: synPacket(clientAddr, 30000, 3306, 57, 0x02), At: t0.Add(time.Second)}
	<-capt.calls // back for the next: the SYN is recorded
	rep, err := c.Report(context.Background(), reg.Run)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Arrivals) != 1 || rep.Arrivals[0].TTL != 57 {
		t.Errorf("arrivals %+v", rep.Arrivals)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// fakeListener accepts nothing until closed.
type fakeListener struct{ closed chan struct{} }

func (l *fakeListener) Accept() (net.Conn, error) { <-l.closed; return nil, net.ErrClosed }
func (l *fakeListener) Close() error {
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
	return nil
}
func (l *fakeListener) Addr() net.Addr { return &net.TCPAddr{} }

// send writes raw bytes as a request from peer and returns what came back
// (nil for no answer).
func (h *harness) send(peer netip.Addr, frame []byte) []byte {
	a, b := net.Pipe()
	go h.srv.handle(pipeConn{Conn: b, remote: net.TCPAddrFromAddrPort(netip.AddrPortFrom(peer, 40000))})
	defer a.Close()
	a.SetDeadline(time.Now().Add(2 * time.Second))
	go a.Write(frame)
	out, err := ReadFrame(a, MaxFrame)
	if err != nil {
		return nil
	}
	return out
}

func frameOf(t *testing.T, v any) []byte {
	var buf bytes.Buffer
	if err := WriteFrame(&buf, v, MaxFrame); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func signedRequest(t *testing.T, token []byte, op string, at time.Time, body any) Request {
	var nonce [16]byte
	copy(nonce[:], NewRunID())
	r, err := NewRequest(token, op, nonce, at, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRefusals: every request out of bounds is refused with a log line,
// creates no run and gets no packet watched; the responder has no code
// that sends probes at all.
func TestRefusals(t *testing.T) {
	other := netip.MustParseAddr("198.18.1.9")
	cases := []struct {
		name    string
		cfg     Config
		peer    netip.Addr
		frame   func(t *testing.T) []byte
		answer  bool   // a signed refusal comes back (else: no answer)
		logLine string // in the log
	}{
		{"wrong token", Config{}, clientAddr, func(t *testing.T) []byte {
			return frameOf(t, signedRequest(t, []byte(strings.Repeat("x", 40)), OpRegister, t0, register(PortRange{1, 2})))
		}, false, "not authenticated"},
		{"stale timestamp", Config{}, clientAddr, func(t *testing.T) []byte {
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0.Add(-time.Minute), register(PortRange{1, 2})))
		}, false, "stale"},
		{"altered body", Config{}, clientAddr, func(t *testing.T) []byte {
			r := signedRequest(t, testToken, OpRegister, t0, register(PortRange{1, 2}))
			r.Body = json.RawMessage(strings.Replace(string(r.Body), "198.18.1.1", "198.18.1.9", 1))
			return frameOf(t, r)
		}, false, "not authenticated"},
		{"third-party client", Config{}, clientAddr, func(t *testing.T) []byte {
			reg := register(PortRange{1, 2})
			reg.Client = other.String()
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0, reg))
		}, true, "your own address"},
		{"foreign target", Config{}, clientAddr, func(t *testing.T) []byte {
			reg := register(PortRange{1, 2})
			reg.Target = "198.18.2.3:3306"
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0, reg))
		}, true, "not an address of this host"},
		{"too long", Config{MaxDuration: time.Second}, clientAddr, func(t *testing.T) []byte {
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0, register(PortRange{1, 2})))
		}, true, "at most"},
		{"too many ports", Config{}, clientAddr, func(t *testing.T) []byte {
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0, register(PortRange{1, 5000})))
		}, true, "more than 4096"},
		{"oversized frame", Config{}, clientAddr, func(t *testing.T) []byte {
			return binary.BigEndian.AppendUint32(nil, MaxFrame+1)
		}, false, "too large"},
		{"garbage", Config{}, clientAddr, func(t *testing.T) []byte {
			return append(binary.BigEndian.AppendUint32(nil, 5), "hello"...)
		}, false, "malformed"},
		{"not allowed", Config{Allow: []netip.Prefix{netip.MustParsePrefix("198.18.3.0/24")}}, clientAddr, func(t *testing.T) []byte {
			return frameOf(t, signedRequest(t, testToken, OpRegister, t0, register(PortRange{1, 2})))
		}, false, "not in --allow"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.cfg)
			out := h.send(c.peer, c.frame(t))
			if (out != nil) != c.answer {
				t.Errorf("answer %q, want one: %v", out, c.answer)
			}
			if out != nil {
				var resp Response
				if err := json.Unmarshal(out, &resp); err != nil || resp.Error == "" {
					t.Errorf("answer %q is not a refusal", out)
				}
			}
			if h.runs() != 0 {
				t.Errorf("%d runs registered", h.runs())
			}
			if !h.logged(c.logLine) {
				t.Errorf("no log line with %q: %q", c.logLine, h.log)
			}
		})
	}
}

func TestReplayRefused(t *testing.T) {
	h := newHarness(t, Config{})
	frame := frameOf(t, signedRequest(t, testToken, OpRegister, t0, register(PortRange{1, 2})))
	if out := h.send(clientAddr, frame); out == nil || h.runs() != 1 {
		t.Fatalf("first: %q, %d runs", out, h.runs())
	}
	if out := h.send(clientAddr, frame); out != nil || !h.logged("nonce already used") {
		t.Errorf("replay answered %q; log %q", out, h.log)
	}
}

func TestLimits(t *testing.T) {
	h := newHarness(t, Config{MaxRuns: 2, Rate: 3})
	c := h.client(clientAddr, testToken)
	for i := range 2 {
		if _, err := c.Register(context.Background(), register(PortRange{1, 2})); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
	}
	if _, err := c.Register(context.Background(), register(PortRange{1, 2})); err == nil || !strings.Contains(err.Error(), "runs already under way") {
		t.Errorf("third run: %v", err)
	}
	// The bucket is empty now (3 requests at one instant): the next is
	// refused as busy, and after a second it refills.
	if _, err := c.Report(context.Background(), NewRunID()); err == nil || !strings.Contains(err.Error(), "requests per second") {
		t.Errorf("over the rate: %v", err)
	}
	h.mu.Lock()
	h.now = h.now.Add(time.Second)
	h.mu.Unlock()
	if _, err := c.Report(context.Background(), NewRunID()); err == nil || !strings.Contains(err.Error(), "no such run") {
		t.Errorf("someone else's or no run: %v", err)
	}
}

func TestRunsArePeers(t *testing.T) {
	h := newHarness(t, Config{})
	reg := register(PortRange{1, 2})
	if _, err := h.client(clientAddr, testToken).Register(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.18.1.9")
	if _, err := h.client(other, testToken).Report(context.Background(), reg.Run); err == nil {
		t.Error("another peer read the run")
	}
	// Expired runs are forgotten.
	h.mu.Lock()
	h.now = h.now.Add(2 * time.Minute)
	h.mu.Unlock()
	if _, err := h.client(clientAddr, testToken).Report(context.Background(), reg.Run); err == nil {
		t.Error("an expired run still reports")
	}
}

func TestClientRefusesForgedAnswers(t *testing.T) {
	// A responder with another token answers nothing the client accepts.
	h := newHarness(t, Config{Token: []byte(strings.Repeat("z", 40))})
	c := h.client(clientAddr, testToken)
	if _, err := c.Register(context.Background(), register(PortRange{1, 2})); err == nil {
		t.Error("accepted")
	}
	a, b := net.Pipe()
	go func() {
		defer b.Close()
		if _, err := ReadFrame(b, MaxFrame); err != nil {
			return
		}
		resp, _ := Sign([]byte(strings.Repeat("y", 40)), "00000000000000000000000000000000", "", Registered{Run: "x"})
		WriteFrame(b, resp, MaxResponse)
	}()
	c2 := &Client{Token: testToken, Attempts: 1, Dial: func(context.Context, string, string) (net.Conn, error) { return a, nil }}
	if _, err := c2.Register(context.Background(), register(PortRange{1, 2})); !errors.Is(err, ErrAuth) {
		t.Errorf("forged answer: %v", err)
	}
}

func TestClientRetriesFromNewConnections(t *testing.T) {
	h := newHarness(t, Config{})
	fails := 2
	dial := h.dialer(clientAddr)
	c := &Client{Token: testToken, Attempts: 4, Now: func() time.Time { return t0 },
		Dial: func(ctx context.Context, n, a string) (net.Conn, error) {
			if fails > 0 {
				fails--
				return nil, errors.New("connection timed out")
			}
			return dial(ctx, n, a)
		}}
	if _, err := c.Register(context.Background(), register(PortRange{1, 2})); err != nil || c.Retries != 2 {
		t.Errorf("err %v, %d retries", err, c.Retries)
	}
}

// A report of every port of the largest run fits a response: a sweep of
// 4096 ports whose SYNs all arrived must be answered, not dropped as too
// large.
func TestReportOfTheLargestRun(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.client(clientAddr, testToken)
	reg := register(PortRange{1024, 1024 + MaxPorts - 1})
	if _, err := c.Register(context.Background(), reg); err != nil {
		t.Fatal(err)
	}
	for p := range uint16(MaxPorts) {
		if s, err := parseSYN(synPacket(clientAddr, 1024+p, 3306, 61, 0x02), false, netip.Addr{}, 0); err == nil {
			h.srv.record(s, t0.Add(time.Second), 0)
		}
	}
	rep, err := c.Report(context.Background(), reg.Run)
	if err != nil || len(rep.Arrivals) != MaxPorts {
		t.Fatalf("report: %d arrivals, %v", len(rep.Arrivals), err)
	}
}
