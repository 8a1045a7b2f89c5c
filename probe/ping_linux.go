package probe

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/rawsock"
)

// PingProber sends ICMP echo without privilege on the kernel's ping
// sockets. A ping socket's bound port is its echo identifier, so there is
// one socket per identifier. The kernel delivers only matching echo
// replies to it; ICMP errors are not read, so they end as timeouts.
type PingProber struct {
	src   netip.Addr
	conns map[uint16]*rawsock.Conn
	buf   []byte
}

var _ Sender = (*PingProber)(nil)

// OpenPing opens one ping socket per echo tuple's identifier.
func OpenPing(src netip.Addr, echo []hash.FiveTuple) (*PingProber, error) {
	p := &PingProber{src: src, conns: make(map[uint16]*rawsock.Conn, len(echo))}
	proto := unix.IPPROTO_ICMP
	if src.Is6() {
		proto = unix.IPPROTO_ICMPV6
	}
	for _, t := range echo {
		c, err := rawsock.Open(src, unix.SOCK_DGRAM, proto)
		if err != nil {
			p.Close()
			switch {
			case errors.Is(err, rawsock.ErrPermission):
				return nil, fmt.Errorf("%w: %v", ErrPingDenied, err)
			case errors.Is(err, rawsock.ErrUnsupported):
				return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
			}
			return nil, err
		}
		if err := c.Bind(src, t.SrcPort); err != nil {
			c.Close()
			p.Close()
			return nil, fmt.Errorf("bind echo identifier %d: %w", t.SrcPort, err)
		}
		p.conns[t.SrcPort] = c
	}
	return p, nil
}

// Send sends one echo request; the kernel fills in identifier and checksum.
func (p *PingProber) Send(pr Probe) (time.Time, error) {
	c, ok := p.conns[pr.Tuple.SrcPort]
	if !ok || pr.Kind != KindICMPEcho {
		return time.Time{}, fmt.Errorf("no ping socket for %s", pr.Tuple)
	}
	var err error
	if p.buf, err = appendEcho(p.buf[:0], pr); err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	return sent, c.SendTo(p.buf, pr.Tuple.Dst, 0)
}

// Receivers returns one receive loop per identifier.
func (p *PingProber) Receivers() []Receiver {
	out := make([]Receiver, 0, len(p.conns))
	for id, c := range p.conns {
		out = append(out, &pingReceiver{conn: c, src: p.src, id: id, buf: make([]byte, 1<<16)})
	}
	return out
}

// Close closes every ping socket.
func (p *PingProber) Close() error {
	for _, c := range p.conns {
		c.Close()
	}
	return nil
}

type pingReceiver struct {
	conn *rawsock.Conn
	src  netip.Addr
	id   uint16
	buf  []byte
}

func (r *pingReceiver) Receive(ctx context.Context) (Arrival, error) {
	pkt, err := r.conn.Receive(ctx, r.buf)
	if err != nil {
		return Arrival{}, err
	}
	rep, err := echoDatagram(pkt.Data, pkt.From, r.src)
	if err != nil {
		return Arrival{}, err
	}
	// The kernel matched the reply to this socket by identifier (and
	// wrote its own into the packet); make ours explicit for the engine.
	rep.EchoID = r.id
	return Arrival{Reply: rep, At: pkt.At, Dropped: pkt.Dropped}, nil
}
