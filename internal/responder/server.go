package responder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ecmpscan/ecmpscan/internal/rawsock"
	"github.com/ecmpscan/ecmpscan/internal/route"
)

// Config is a responder's policy. Zero limits take the defaults.
type Config struct {
	Token []byte
	// Allow lists the peers that may register runs; empty allows any
	// peer that authenticates.
	Allow []netip.Prefix
	// MaxRuns bounds the runs watched at once (default 4).
	MaxRuns int
	// MaxDuration bounds a run (default 5 minutes).
	MaxDuration time.Duration
	// Rate bounds requests per second (default 10); more get ErrBusy.
	Rate float64
	// IsLocal reports whether an address is this host's: a run's target
	// must be. Default: the addresses of the host's interfaces.
	IsLocal func(netip.Addr) bool
	// Log gets one line per refused request and per run.
	Log func(string)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// ProbeRate caps reverse probes per second (DefaultProbeRate).
	ProbeRate float64
	// OpenReverse opens the sockets of a reverse trace (default
	// probe.OpenReverse: raw sockets).
	OpenReverse func(local netip.AddrPort, peer netip.Addr) (ReverseProber, error)
	// FirstHop asks the routing table which gateway a reverse trace's
	// answers leave by (default route.Lookup).
	FirstHop route.LookupFunc
}

// Defaults.
const (
	DefaultMaxRuns     = 4
	DefaultMaxDuration = 5 * time.Minute
	DefaultRate        = 10
	// connTimeout bounds one control connection, request and response.
	connTimeout = 5 * time.Second
	// maxConns bounds the connections handled at once.
	maxConns = 16
)

// Server watches registered runs' SYNs arrive and reports them.
type Server struct {
	cfg   Config
	guard *Guard
	conns chan struct{}

	mu     sync.Mutex
	runs   map[string]*run
	tokens float64 // request bucket
	last   time.Time
	// dropped is the capture sockets' drop count, last seen.
	dropped uint32
	// reversing counts reverse traces under way; they run under ctx,
	// and wg waits for them.
	reversing int
	ctx       context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
}

// run is one registered run: the tuples watched and what arrived.
type run struct {
	id       string
	client   netip.Addr
	target   netip.AddrPort
	arrivals map[uint16]*Arrival // one per registered port; Count 0 until a SYN arrives
	expires  time.Time
	reverse  *reverseRun // nil until asked for
}

// NewServer checks the policy and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Token) < MinTokenLen {
		return nil, fmt.Errorf("%w: a token has at least %d characters", ErrToken, MinTokenLen)
	}
	if cfg.MaxRuns <= 0 {
		cfg.MaxRuns = DefaultMaxRuns
	}
	if cfg.MaxDuration <= 0 {
		cfg.MaxDuration = DefaultMaxDuration
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.IsLocal == nil {
		cfg.IsLocal = hostAddress
	}
	if cfg.Log == nil {
		cfg.Log = func(string) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ProbeRate <= 0 {
		cfg.ProbeRate = DefaultProbeRate
	}
	if cfg.OpenReverse == nil {
		cfg.OpenReverse = OpenReverse
	}
	if cfg.FirstHop == nil {
		cfg.FirstHop = route.Lookup
	}
	s := &Server{cfg: cfg, guard: NewGuard(cfg.Token), conns: make(chan struct{}, maxConns),
		runs: map[string]*run{}, tokens: cfg.Rate}
	s.ctx, s.stop = context.WithCancel(context.Background())
	return s, nil
}

// Close stops the reverse traces under way and waits for them.
func (s *Server) Close() {
	s.stop()
	s.wg.Wait()
}

// hostAddress reports whether a is an address of one of this host's
// interfaces.
func hostAddress(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
}

// Serve accepts control connections until ctx ends, and records the SYNs
// the captures deliver.
func (s *Server) Serve(ctx context.Context, ln net.Listener, captures ...Capture) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		<-ctx.Done()
		ln.Close()
		for _, c := range captures {
			c.Close()
		}
		return nil
	})
	for _, c := range captures {
		g.Go(func() error { return s.capture(ctx, c) })
	}
	g.Go(func() error { return s.accept(ctx, ln) })
	err := g.Wait()
	s.Close()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) accept(ctx context.Context, ln net.Listener) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		select {
		case s.conns <- struct{}{}:
		default:
			s.cfg.Log(fmt.Sprintf("refused %s: %d control connections already open", conn.RemoteAddr(), maxConns))
			conn.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-s.conns }()
			s.handle(conn)
		}()
	}
}

// handle serves one control connection: one request, one response.
func (s *Server) handle(conn net.Conn) {
	defer conn.Close()
	// An I/O deadline is wall time, whatever the protocol clock says.
	conn.SetDeadline(time.Now().Add(connTimeout))
	peer := peerAddr(conn)
	if !s.allowed(peer) {
		s.cfg.Log(fmt.Sprintf("refused %s: not in --allow", peer))
		return
	}
	b, err := ReadFrame(conn, MaxFrame)
	if err != nil {
		s.cfg.Log(fmt.Sprintf("refused %s: %v", peer, err))
		return
	}
	req, err := DecodeRequest(b)
	if err != nil {
		s.cfg.Log(fmt.Sprintf("refused %s: %v", peer, err))
		return
	}
	if err := s.guard.Check(req, s.cfg.Now()); err != nil {
		s.cfg.Log(fmt.Sprintf("refused %s: %v", peer, err))
		return
	}
	body, err := s.serve(peer, req)
	errText := ""
	if err != nil {
		s.cfg.Log(fmt.Sprintf("refused %s %s: %v", peer, req.Op, err))
		errText, body = err.Error(), nil
	}
	resp, err := Sign(s.cfg.Token, req.Nonce, errText, body)
	if err == nil {
		err = WriteFrame(conn, resp, MaxResponse)
	}
	if err != nil {
		s.cfg.Log(fmt.Sprintf("answering %s: %v", peer, err))
	}
}

func peerAddr(conn net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	return netip.Addr{}
}

func (s *Server) allowed(peer netip.Addr) bool {
	if !peer.IsValid() {
		return false
	}
	if len(s.cfg.Allow) == 0 {
		return true
	}
	return slices.ContainsFunc(s.cfg.Allow, func(p netip.Prefix) bool { return p.Contains(peer) })
}

// serve runs an authenticated request.
func (s *Server) serve(peer netip.Addr, req Request) (any, error) {
	if !s.take() {
		return nil, fmt.Errorf("%w: more than %g requests per second", ErrBusy, s.cfg.Rate)
	}
	switch req.Op {
	case OpRegister:
		return s.register(peer, req.Body)
	case OpReverse:
		return s.reverse(peer, req.Body)
	default:
		return s.report(peer, req.Body)
	}
}

// take takes one request from the token bucket.
func (s *Server) take() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if !s.last.IsZero() {
		s.tokens = min(s.cfg.Rate, s.tokens+now.Sub(s.last).Seconds()*s.cfg.Rate)
	}
	s.last = now
	if s.tokens < 1 {
		return false
	}
	s.tokens--
	return true
}

func (s *Server) register(peer netip.Addr, body json.RawMessage) (any, error) {
	reg, ports, client, target, err := DecodeRegister(body)
	if err != nil {
		return nil, err
	}
	switch {
	case client.Unmap() != peer:
		return nil, fmt.Errorf("%w: the probes must come from your own address %s, not %s", ErrScope, peer, client)
	case !s.cfg.IsLocal(target.Addr()):
		return nil, fmt.Errorf("%w: target %s is not an address of this host", ErrScope, target.Addr())
	case time.Duration(reg.DurationMS)*time.Millisecond > s.cfg.MaxDuration:
		return nil, fmt.Errorf("%w: a run lasts at most %s", ErrScope, s.cfg.MaxDuration)
	case reg.Run != "" && !isHex(reg.Run, 32):
		return nil, fmt.Errorf("%w: run id must be 32 hex digits", ErrMalformed)
	}
	now := s.cfg.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if r, ok := s.runs[reg.Run]; ok && reg.Run != "" {
		if r.client != client.Unmap() {
			return nil, fmt.Errorf("%w: run %s is another peer's", ErrScope, reg.Run)
		}
		return Registered{Run: r.id, ExpiresMS: r.expires.UnixMilli()}, nil // a retried register
	}
	if len(s.runs) >= s.cfg.MaxRuns {
		return nil, fmt.Errorf("%w: %d runs already under way", ErrBusy, len(s.runs))
	}
	id := reg.Run
	if id == "" {
		id = newRunID()
	}
	r := &run{id: id, client: client.Unmap(), target: netip.AddrPortFrom(target.Addr().Unmap(), target.Port()),
		arrivals: make(map[uint16]*Arrival, len(ports)), expires: now.Add(time.Duration(reg.DurationMS) * time.Millisecond)}
	for _, p := range ports {
		r.arrivals[p] = &Arrival{Sport: p}
	}
	s.runs[id] = r
	s.cfg.Log(fmt.Sprintf("run %s: %s -> %s, %d source ports, until %s", id, client, target, len(ports), r.expires.UTC().Format(time.RFC3339)))
	return Registered{Run: id, ExpiresMS: r.expires.UnixMilli()}, nil
}

func newRunID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// expire forgets runs past their end (their report goes with them).
func (s *Server) expire(now time.Time) {
	for id, r := range s.runs {
		if now.After(r.expires.Add(time.Minute)) {
			delete(s.runs, id)
		}
	}
}

func (s *Server) report(peer netip.Addr, body json.RawMessage) (any, error) {
	var req ReportRequest
	if err := json.Unmarshal(body, &req); err != nil || !isHex(req.Run, 32) {
		return nil, fmt.Errorf("%w: report needs a run id", ErrMalformed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(s.cfg.Now())
	r, ok := s.runs[req.Run]
	if !ok || r.client != peer {
		return nil, fmt.Errorf("%w: no such run of yours", ErrScope)
	}
	out := Report{Run: r.id, Arrivals: []Arrival{}, Dropped: s.dropped}
	for _, a := range r.arrivals {
		if a.Count > 0 {
			out.Arrivals = append(out.Arrivals, *a)
		}
	}
	slices.SortFunc(out.Arrivals, func(x, y Arrival) int { return int(x.Sport) - int(y.Sport) })
	if r.reverse != nil {
		out.Return = r.reverse.snapshot()
	}
	return out, nil
}

// Capture is where the probe SYNs come from: a raw TCP socket per family.
type Capture interface {
	Receive(ctx context.Context, buf []byte) (rawsock.Packet, error)
	Close() error
	V6() bool
}

// capture records every probe SYN a capture delivers.
func (s *Server) capture(ctx context.Context, c Capture) error {
	buf := make([]byte, 1<<16)
	for {
		p, err := c.Receive(ctx, buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("capture: %w", err)
		}
		if syn, err := parseSYN(p.Data, c.V6(), p.From.Unmap().WithZone(""), p.HopLimit); err == nil {
			s.record(syn, p.At, p.Dropped)
		}
	}
}

// record counts a SYN for the run whose tuple it carries.
func (s *Server) record(syn syn, at time.Time, dropped uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropped = max(s.dropped, dropped)
	for _, r := range s.runs {
		if r.client != syn.src.Unmap() || r.target.Port() != syn.dport || at.After(r.expires) {
			continue
		}
		if a, ok := r.arrivals[syn.sport]; ok {
			if a.Count == 0 {
				a.FirstMS, a.TTL = at.UnixMilli(), syn.ttl
			}
			a.Count++
			if len(a.Probes) < MaxProbesPerPort {
				a.Probes = append(a.Probes, ProbeArrival{Seq: syn.seq, MS: at.UnixMilli(), TTL: syn.ttl})
			}
		}
	}
}
