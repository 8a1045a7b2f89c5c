package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/internal/rawsock"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// RawProber sends TCP SYNs and ICMP echo requests on raw sockets and reads
// every TCP segment and ICMP message addressed back to us. A reverse
// prober (OpenReverse) sends SYN-ACKs from a server's port instead.
type RawProber struct {
	src, dst netip.Addr // as in packets: no IPv6 zone
	zone     string     // the target's IPv6 zone, for link-local targets
	dport    uint16
	// reverse: dport is our own (server) port, and the peer's segments
	// come to it; otherwise they come from it.
	reverse bool
	tcp     *rawsock.Conn
	icmp    *rawsock.Conn // nil without ICMP probes
	buf     []byte
	ttl     map[*rawsock.Conn]uint8 // TTL each socket is set to; 0 = default
}

var (
	_ Sender   = (*RawProber)(nil)
	_ Receiver = (*rawReceiver)(nil)
)

// OpenRaw opens the raw sockets for probing dst:dport from src. It fails
// with an error wrapping ErrPermission without CAP_NET_RAW, and
// ErrUnsupported where the system has no raw sockets for us. A link-local
// IPv6 target keeps its zone (fe80::1%eth0).
func OpenRaw(src netip.Addr, dst netip.AddrPort, withICMP bool) (*RawProber, error) {
	zone := dst.Addr().Zone()
	if zone == "" {
		zone = src.Zone()
	}
	r := &RawProber{src: src.WithZone(""), dst: dst.Addr().WithZone(""), zone: zone, dport: dst.Port(),
		buf: make([]byte, 0, 128), ttl: map[*rawsock.Conn]uint8{}}
	if err := r.open(withICMP); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenReverse opens the raw sockets for reverse probes: SYN-ACKs from
// local (a server's address and listening port) to peer's ports, shaped
// like the server's answers, whose replies are the peer's RSTs to local's
// port and the routers' ICMP errors. Errors as OpenRaw's.
func OpenReverse(local netip.AddrPort, peer netip.Addr) (*RawProber, error) {
	r := &RawProber{src: local.Addr().WithZone(""), dst: peer.WithZone(""), dport: local.Port(), reverse: true,
		buf: make([]byte, 0, 128), ttl: map[*rawsock.Conn]uint8{}}
	if err := r.open(true); err != nil {
		return nil, err
	}
	return r, nil
}

// portOffset is where in the peer's TCP header the filtered port sits.
func (r *RawProber) portOffset() uint32 {
	if r.reverse {
		return 2 // destination port: ours
	}
	return 0 // source port: the target's
}

// open opens and filters the sockets.
func (r *RawProber) open(withICMP bool) error {
	var err error
	if r.tcp, err = openBound(r.withZone(r.src), unix.IPPROTO_TCP); err != nil {
		return err
	}
	// Only TCP from the peer on the probed port reaches us; the kernel
	// copies every TCP segment to a raw socket otherwise.
	var filter []bpf.Instruction
	if r.is6() {
		filter = ipv6TCPFilter(r.portOffset(), r.dport)
	} else {
		filter = ipv4TCPFilter(r.dst, r.portOffset(), r.dport)
	}
	if err := r.tcp.AttachFilter(filter); err != nil {
		r.Close()
		return fmt.Errorf("attach filter: %w", err)
	}
	if withICMP {
		proto := unix.IPPROTO_ICMP
		if r.is6() {
			proto = unix.IPPROTO_ICMPV6
		}
		if r.icmp, err = openBound(r.withZone(r.src), proto); err != nil {
			r.Close()
			return err
		}
		if r.is6() {
			// Unreachable, too big, time exceeded, parameter problem, echo reply.
			if err := r.icmp.SetICMPv6Filter(1, 2, 3, 4, 129); err != nil {
				r.Close()
				return fmt.Errorf("icmpv6 filter: %w", err)
			}
		}
	}
	return nil
}

// withZone puts the target's zone on a link-local address for the sockets.
func (r *RawProber) withZone(a netip.Addr) netip.Addr {
	if r.zone != "" && a.Is6() && (a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()) {
		return a.WithZone(r.zone)
	}
	return a
}

func openBound(src netip.Addr, proto int) (*rawsock.Conn, error) {
	c, err := rawsock.Open(src, unix.SOCK_RAW, proto)
	switch {
	case errors.Is(err, rawsock.ErrPermission):
		return nil, fmt.Errorf("%w (%v)", ErrPermission, err)
	case errors.Is(err, rawsock.ErrUnsupported):
		return nil, fmt.Errorf("%w (%v)", ErrUnsupported, err)
	case err != nil:
		return nil, err
	}
	if err := c.Bind(src, 0); err != nil {
		c.Close()
		return nil, fmt.Errorf("bind %s: %w", src, err)
	}
	return c, nil
}

// ipv4TCPFilter accepts IPv4 packets from dst whose TCP port at offset off
// (0 source, 2 destination) is port.
func ipv4TCPFilter(dst netip.Addr, off uint32, port uint16) []bpf.Instruction {
	a := dst.As4()
	addr := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 4}, // source address
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: addr, SkipTrue: 3},
		bpf.LoadMemShift{Off: 0},            // X = IP header length
		bpf.LoadIndirect{Off: off, Size: 2}, // the TCP port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	}
}

// ipv6TCPFilter accepts TCP segments whose port at offset off (0 source, 2
// destination) is port. An IPv6 raw socket sees no IP header, so the
// filter starts at TCP and the source address is checked in Receive.
func ipv6TCPFilter(off uint32, port uint16) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: off, Size: 2}, // the TCP port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(port), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	}
}

func (r *RawProber) is6() bool { return r.dst.Is6() && !r.dst.Is4In6() }

// Receivers are the receive loops the engine runs.
func (r *RawProber) Receivers() []Receiver {
	rs := []Receiver{&rawReceiver{conn: r.tcp, prober: r, tcp: true, buf: make([]byte, 1<<16)}}
	if r.icmp != nil {
		rs = append(rs, &rawReceiver{conn: r.icmp, prober: r, buf: make([]byte, 1<<16)})
	}
	return rs
}

// Send builds and sends one probe; only the engine's send loop calls it.
func (r *RawProber) Send(p Probe) (time.Time, error) {
	var err error
	conn := r.tcp
	switch p.Kind {
	case KindTCPSYN:
		r.buf, err = packet.AppendTCPSYN(r.buf[:0], packet.SYN{Tuple: p.Tuple, Seq: p.Cookie})
	case KindTCPSYNACK:
		// The cookie rides in both numbers: routers quote the sequence
		// number, and the peer's RST carries the acknowledgment number
		// back as its own sequence number.
		r.buf, err = packet.AppendTCPSYN(r.buf[:0], packet.SYN{Tuple: p.Tuple, Seq: p.Cookie, SynAck: true, Ack: p.Cookie})
	case KindICMPEcho:
		if r.icmp == nil {
			return time.Time{}, errors.New("icmp socket not open")
		}
		conn = r.icmp
		r.buf, err = appendEcho(r.buf[:0], p)
	default:
		return time.Time{}, fmt.Errorf("raw prober cannot send %s", p.Kind)
	}
	if err != nil {
		return time.Time{}, err
	}
	if err := r.setTTL(conn, p.TTL); err != nil {
		return time.Time{}, err
	}
	// Stamp before the syscall: on a fast path the reply can be received
	// before sendto returns.
	sent := time.Now()
	if err := conn.SendTo(r.buf, r.withZone(p.Tuple.Dst), 0); err != nil {
		return time.Time{}, err
	}
	return sent, nil
}

// setTTL changes the socket's TTL only when the probe needs another one; the
// send loop is the only caller, so the socket option cannot race.
func (r *RawProber) setTTL(conn *rawsock.Conn, ttl uint8) error {
	if r.ttl[conn] == ttl {
		return nil
	}
	want := int(ttl)
	if ttl == 0 {
		want = -1 // back to the system default
	}
	if err := conn.SetTTL(want); err != nil {
		return fmt.Errorf("set TTL %d: %w", ttl, err)
	}
	r.ttl[conn] = ttl
	return nil
}

// echoPayload names the tool in every echo request, for whoever captures it.
var echoPayload = [16]byte{'e', 'c', 'm', 'p', 's', 'c', 'a', 'n', ' ', 'e', 'c', 'h', 'o', ' ', ' ', ' '}

// Close closes the sockets.
func (r *RawProber) Close() error {
	if r.tcp != nil {
		r.tcp.Close()
	}
	if r.icmp != nil {
		r.icmp.Close()
	}
	return nil
}

type rawReceiver struct {
	conn   *rawsock.Conn
	prober *RawProber
	tcp    bool
	buf    []byte
}

func (rr *rawReceiver) Receive(ctx context.Context) (Arrival, error) {
	pkt, err := rr.conn.Receive(ctx, rr.buf)
	if err != nil {
		return Arrival{}, err
	}
	r := rr.prober
	pkt.From = pkt.From.WithZone("")
	var rep packet.Reply
	switch {
	case !r.is6():
		rep, err = packet.ParseIPv4(pkt.Data)
	case rr.tcp:
		rep, err = packet.ParseTCP6(pkt.Data, pkt.From, r.src)
	default:
		rep, err = packet.ParseICMP6(pkt.Data, pkt.From, r.src)
	}
	if err != nil {
		return Arrival{}, err
	}
	if rep.TTL == 0 {
		rep.TTL = pkt.HopLimit
	}
	port := rep.Tuple.SrcPort
	if r.reverse {
		port = rep.Tuple.DstPort
	}
	if rep.Kind == packet.KindTCP && (rep.From != r.dst || port != r.dport) {
		return Arrival{}, ErrIgnored
	}
	if rep.Kind == packet.KindEchoReply && rep.From != r.dst {
		return Arrival{}, ErrIgnored
	}
	return Arrival{Reply: rep, At: pkt.At, Dropped: pkt.Dropped}, nil
}
