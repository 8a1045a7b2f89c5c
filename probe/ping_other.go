//go:build !linux

package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/net/icmp"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/rawsock"
)

// PingProber sends ICMP echo without privilege on an unprivileged ICMP
// datagram socket (macOS has them). Unlike Linux, the kernel neither
// rewrites the identifier nor matches replies to sockets by it, so one
// socket serves every echo flow and the receiver keeps only replies with
// one of our identifiers. ICMP errors are not read; they end as timeouts.
type PingProber struct {
	src  netip.Addr
	conn *icmp.PacketConn
	ids  map[uint16]bool
	buf  []byte
}

var _ Sender = (*PingProber)(nil)

// OpenPing opens the datagram ICMP socket for the echo flows.
func OpenPing(src netip.Addr, echo []hash.FiveTuple) (*PingProber, error) {
	network := "udp4"
	if src.Is6() {
		network = "udp6"
	}
	conn, err := icmp.ListenPacket(network, src.String())
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("%w: %v", ErrPingDenied, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	p := &PingProber{src: src, conn: conn, ids: make(map[uint16]bool, len(echo))}
	for _, t := range echo {
		p.ids[t.SrcPort] = true
	}
	return p, nil
}

// Send sends one echo request with our identifier and sequence number.
func (p *PingProber) Send(pr Probe) (time.Time, error) {
	if pr.Kind != KindICMPEcho || !p.ids[pr.Tuple.SrcPort] {
		return time.Time{}, fmt.Errorf("no ping flow for %s", pr.Tuple)
	}
	var err error
	if p.buf, err = appendEcho(p.buf[:0], pr); err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	dst := &net.UDPAddr{IP: pr.Tuple.Dst.AsSlice(), Zone: pr.Tuple.Dst.Zone()}
	if _, err := p.conn.WriteTo(p.buf, dst); err != nil {
		return time.Time{}, err
	}
	return sent, nil
}

// Receivers is the one socket's receive loop.
func (p *PingProber) Receivers() []Receiver {
	return []Receiver{&pingReceiver{p: p, buf: make([]byte, 1<<16), cut: rawsock.ReadCanceller{SetReadDeadline: p.conn.SetReadDeadline}}}
}

// Close closes the socket.
func (p *PingProber) Close() error { return p.conn.Close() }

type pingReceiver struct {
	p   *PingProber
	buf []byte
	cut rawsock.ReadCanceller
}

func (r *pingReceiver) Receive(ctx context.Context) (Arrival, error) {
	defer r.cut.Watch(ctx)()
	n, from, err := r.p.conn.ReadFrom(r.buf)
	if ctx.Err() != nil {
		return Arrival{}, ctx.Err()
	}
	if err != nil {
		return Arrival{}, err
	}
	at := time.Now()
	var peer netip.Addr
	if ua, ok := from.(*net.UDPAddr); ok {
		peer, _ = netip.AddrFromSlice(ua.IP)
		peer = peer.Unmap()
	}
	rep, err := echoDatagram(r.buf[:n], peer, r.p.src)
	if err != nil {
		return Arrival{}, err
	}
	if !r.p.ids[rep.EchoID] {
		return Arrival{}, ErrIgnored // another program's ping
	}
	return Arrival{Reply: rep, At: at}, nil
}
