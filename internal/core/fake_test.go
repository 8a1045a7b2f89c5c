package core

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// fabric is a fake network for the core's tests: client - r1 - N ECMP
// members p0..pN-1 - server, three hops, with one fault on one member. It
// answers probes the way the lab's Linux routers do, at once, on the
// engine's clock (the tests run in a synctest bubble, so timeouts cost no
// wall time). Its ground truth (which member a flow hashes to) is what the
// tests check the core against.
type fabric struct {
	width, bad int
	fault      string // "", "blackhole-fwd", "blackhole-ret", "drop-synack"
	loss       float64
	raw        bool                    // raw sockets allowed
	sendErr    func(probe.Probe) error // a local firewall, a port in use
	bogus      bool                    // also send SYN-ACKs that acknowledge nothing of ours
	// rateLimited routers answer as Linux's do by default: a burst of 6
	// errors, then one a second.
	rateLimited bool
	tokens      map[netip.Addr]float64
	refilled    map[netip.Addr]time.Time
	// budgetOf names, for an address, the one whose budget it spends:
	// two members' addresses of one router (absent: its own).
	budgetOf map[netip.Addr]netip.Addr

	mu       sync.Mutex
	rng      *rand.Rand
	replies  chan probe.Arrival
	halfOpen map[hash.FiveTuple]uint32 // server connections left in SYN_RECV
	sent     int
	arrived  map[uint16]int      // SYNs that reached the server, by source port
	seqs     map[uint16][]uint32 // and their sequence numbers
}

var (
	client = netip.MustParseAddr("198.18.1.1")
	server = netip.MustParseAddr("198.18.2.2")
	r1     = netip.MustParseAddr("198.18.255.1")
)

func member(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 255, byte(11 + i)}) }

func newFabric(width, bad int, fault string) *fabric {
	return &fabric{
		width: width, bad: bad, fault: fault, raw: true,
		rng: rand.New(rand.NewPCG(1, 2)), replies: make(chan probe.Arrival, 1<<16),
		halfOpen: map[hash.FiveTuple]uint32{},
	}
}

// memberOf is the ECMP choice for a flow (the fabric's hash).
func (f *fabric) memberOf(t hash.FiveTuple) int {
	z := uint64(t.SrcPort)*0x9e3779b97f4a7c15 + 7
	z = (z ^ (z >> 31)) * 0xbf58476d1ce4e5b9
	return int((z >> 33) % uint64(f.width))
}

// failing is the ground truth: the source ports whose flows the fault kills.
func (f *fabric) failing(ports []uint16) map[uint16]bool {
	out := map[uint16]bool{}
	if f.fault == "" {
		return out
	}
	for _, sp := range ports {
		if f.memberOf(hash.FiveTuple{SrcPort: sp}) == f.bad {
			out[sp] = true
		}
	}
	return out
}

func (f *fabric) Send(p probe.Probe) (time.Time, error) {
	if f.sendErr != nil {
		if err := f.sendErr(p); err != nil {
			return time.Time{}, err
		}
	}
	return f.transmit(p)
}

// transmit is the probe on the wire, and the fabric's answer to it.
func (f *fabric) transmit(p probe.Probe) (time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent++
	now := time.Now()
	if f.loss > 0 && f.rng.Float64() < f.loss {
		return now, nil
	}
	if p.Kind == probe.KindICMPEcho {
		f.deliver(packet.Reply{Kind: packet.KindEchoReply, From: p.Tuple.Dst, To: p.Tuple.Src,
			EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie), TTL: 62})
		return now, nil
	}
	m := f.memberOf(p.Tuple)
	onBad := m == f.bad && f.fault != ""
	if p.TTL == 1 || p.TTL == 2 {
		if p.TTL == 2 && onBad && f.fault == "blackhole-fwd" {
			return now, nil // a blackhole route: no time exceeded either
		}
		from := r1
		if p.TTL == 2 {
			from = member(m)
		}
		if !f.mayAnswer(from, now) {
			return now, nil
		}
		f.deliver(packet.Reply{Kind: packet.KindICMPError, From: from, To: p.Tuple.Src, Tuple: p.Tuple,
			QuotedProto: hash.ProtoTCP, QuotedSeq: p.Cookie, ICMPType: 11})
		return now, nil
	}
	if !(onBad && f.fault == "blackhole-fwd") && p.Kind == probe.KindTCPSYN {
		if f.arrived == nil {
			f.arrived, f.seqs = map[uint16]int{}, map[uint16][]uint32{}
		}
		f.arrived[p.Tuple.SrcPort]++
		f.seqs[p.Tuple.SrcPort] = append(f.seqs[p.Tuple.SrcPort], p.Cookie)
	}
	f.answer(p, onBad)
	return now, nil
}

// mayAnswer takes a token from router from's bucket, when it has one.
func (f *fabric) mayAnswer(from netip.Addr, now time.Time) bool {
	if !f.rateLimited {
		return true
	}
	if f.tokens == nil {
		f.tokens, f.refilled = map[netip.Addr]float64{}, map[netip.Addr]time.Time{}
	}
	if b, ok := f.budgetOf[from]; ok {
		from = b
	}
	tok, ok := f.tokens[from]
	if !ok {
		tok = 6
	} else {
		tok = min(6, tok+now.Sub(f.refilled[from]).Seconds())
	}
	f.refilled[from] = now
	if tok < 1 {
		f.tokens[from] = tok
		return false
	}
	f.tokens[from] = tok - 1
	return true
}

// answer is the server's reply to a SYN that reached it, as it travels back.
func (f *fabric) answer(p probe.Probe, onBad bool) {
	if onBad && f.fault == "blackhole-fwd" {
		return
	}
	rep := packet.Reply{Kind: packet.KindTCP, From: p.Tuple.Dst, To: p.Tuple.Src, Tuple: p.Tuple.Reverse(),
		Ack: p.Cookie + 1, Flags: packet.FlagSYN | packet.FlagACK, TTL: 62}
	if first, ok := f.halfOpen[p.Tuple]; ok {
		rep.Ack, rep.Flags = first+1, packet.FlagACK // still in SYN_RECV from the first SYN
	} else if onBad && f.fault == "drop-synack" {
		f.halfOpen[p.Tuple] = p.Cookie
	}
	if onBad && (f.fault == "blackhole-ret" || f.fault == "drop-synack") && rep.Flags&packet.FlagSYN != 0 {
		return
	}
	if p.Kind == probe.KindConnect && rep.Flags&packet.FlagSYN == 0 {
		return // a connect() sees no bare ACK: it just times out
	}
	f.deliver(rep)
	if f.bogus {
		rep.Ack += 1000
		f.deliver(rep)
	}
}

func (f *fabric) deliver(rep packet.Reply) {
	f.replies <- probe.Arrival{Reply: rep, At: time.Now()}
}

func (f *fabric) Receive(ctx context.Context) (probe.Arrival, error) {
	select {
	case a := <-f.replies:
		return a, nil
	case <-ctx.Done():
		return probe.Arrival{}, ctx.Err()
	}
}

func (f *fabric) Receivers() []probe.Receiver { return []probe.Receiver{f} }
func (f *fabric) Close() error                { return nil }

// connectFabric is the fabric seen through connect(): local errors come
// back as arrivals with SendErr, as probe.ConnectProber reports them.
type connectFabric struct{ *fabric }

func (c connectFabric) Send(p probe.Probe) (time.Time, error) {
	if c.sendErr != nil {
		if err := c.sendErr(p); err != nil {
			c.replies <- probe.Arrival{SendErr: err, At: time.Now(), Reply: packet.Reply{
				Kind: packet.KindTCP, Tuple: p.Tuple.Reverse(), Ack: p.Cookie + 1}}
			return time.Now(), nil
		}
	}
	return c.transmit(p)
}

func (c connectFabric) Receivers() []probe.Receiver { return []probe.Receiver{c} }

// Raw, Connect and Ping make the fabric a Probers.
func (f *fabric) Raw(netip.Addr, netip.AddrPort, bool) (Prober, error) {
	if !f.raw {
		return nil, fmt.Errorf("%w: socket: operation not permitted", probe.ErrPermission)
	}
	return f, nil
}

func (f *fabric) Connect(time.Duration) (Prober, error) { return connectFabric{f}, nil }

func (f *fabric) Ping(netip.Addr, []hash.FiveTuple) (Prober, error) { return f, nil }

// Alias: the fake's routers take no IP options.
func (f *fabric) Alias(netip.Addr, []probe.AliasPair) (Prober, error) {
	return nil, fmt.Errorf("%w: the fake fabric takes no IP options", probe.ErrUnsupported)
}

// fixedResolver resolves every host to the server.
type fixedResolver struct{}

func (fixedResolver) Resolve(string, int) (netip.Addr, error) { return server, nil }
func (fixedResolver) SourceFor(netip.AddrPort) (netip.Addr, error) {
	return client, nil
}

func testEnv(f *fabric) Env {
	seed := uint64(0)
	return Env{Probers: f, Resolver: fixedResolver{}, Random: func() uint64 { seed++; return seed }}
}

func portRange(first, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(first + i)
	}
	return out
}

func sweepConfig(ports []uint16, count int) SweepConfig {
	return SweepConfig{
		Target:  Target{Host: "vip", Port: 3306},
		Probing: Probing{Ports: ports, Count: count, Rate: 2000, Timeout: time.Second},
		Mode:    ModeAuto, ICMP: 4,
	}
}

var errEPERM = fmt.Errorf("sendto: %w", syscall.EPERM)
