package probe

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// ConnectProber is the unprivileged fallback: each probe is a real connect()
// from a bound source port. Its outcome is turned into the reply a raw
// prober would have seen, so the same engine matches and times it out.
type ConnectProber struct {
	timeout time.Duration
	replies chan Arrival
	closed  chan struct{}
	dial    func(ctx context.Context, p Probe) error
}

var (
	_ Sender   = (*ConnectProber)(nil)
	_ Receiver = (*ConnectProber)(nil)
)

// NewConnectProber returns a prober whose connects give up after timeout.
func NewConnectProber(timeout time.Duration) *ConnectProber {
	c := &ConnectProber{timeout: timeout, replies: make(chan Arrival, 1024), closed: make(chan struct{})}
	c.dial = c.connect
	return c
}

// Send starts one connect in the background and returns at once, so the
// engine's pacing, not the handshake, sets the rate.
func (c *ConnectProber) Send(p Probe) (time.Time, error) {
	if p.Kind != KindConnect {
		return time.Time{}, errors.New("connect prober sends only tcp-connect probes")
	}
	sent := time.Now()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		err := c.dial(ctx, p)
		if a, ok := replyFor(p, err); ok {
			a.At = time.Now()
			select {
			case c.replies <- a:
			case <-c.closed: // the run is over; nobody reads any more
			}
		}
	}()
	return sent, nil
}

// Close releases connects that finish after the run ended.
func (c *ConnectProber) Close() error {
	close(c.closed)
	return nil
}

// Receive hands over the next finished connect.
func (c *ConnectProber) Receive(ctx context.Context) (Arrival, error) {
	select {
	case a := <-c.replies:
		return a, nil
	case <-ctx.Done():
		return Arrival{}, ctx.Err()
	}
}

// replyFor translates a connect's result: established or refused means a
// SYN-ACK or RST came back; unreachable means an ICMP error; a timeout
// means silence, which the engine records itself. Any other error is local
// (the source port is in use, the address is not ours, a firewall said no,
// no buffers): the probe never left, and it says so with SendErr rather
// than passing for loss on the path.
func replyFor(p Probe, err error) (Arrival, bool) {
	rep := packet.Reply{From: p.Tuple.Dst, To: p.Tuple.Src}
	tcp := func(flags uint8) {
		rep.Kind, rep.Tuple, rep.Ack, rep.Flags = packet.KindTCP, p.Tuple.Reverse(), p.Cookie+1, flags
	}
	var a Arrival
	switch {
	case err == nil:
		tcp(packet.FlagSYN | packet.FlagACK)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET):
		tcp(packet.FlagRST | packet.FlagACK)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		rep.Kind, rep.Tuple, rep.QuotedProto, rep.QuotedSeq = packet.KindICMPError, p.Tuple, hash.ProtoTCP, p.Cookie
		rep.ICMPType = 3
	case isTimeout(err):
		return Arrival{}, false
	default:
		tcp(0)
		a.SendErr = err
	}
	a.Reply = rep
	return a, true
}

// isTimeout is silence from the path: our deadline, or the kernel giving up
// on SYN retransmissions.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, syscall.ETIMEDOUT) || (errors.As(err, &ne) && ne.Timeout())
}

// connect binds the probe's source port and connects. SO_LINGER 0 on close
// sends a RST instead of a FIN, so no TIME_WAIT blocks the next repeat.
func (c *ConnectProber) connect(ctx context.Context, p Probe) error {
	d := net.Dialer{
		LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(p.Tuple.Src, p.Tuple.SrcPort)),
		Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
			})
			if err != nil {
				return err
			}
			return serr
		},
	}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(p.Tuple.Dst, p.Tuple.DstPort).String())
	if err != nil {
		return err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return conn.Close()
}

// Receivers is the prober itself: finished connects arrive on one channel.
func (c *ConnectProber) Receivers() []Receiver { return []Receiver{c} }
