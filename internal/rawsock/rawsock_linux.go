package rawsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// receiveBuffer is the socket receive buffer asked for: deep enough that a
// fast sweep does not overrun it.
const receiveBuffer = 4 << 20

// Conn is one raw (or ping) socket, registered with the netpoller.
type Conn struct {
	f      *os.File
	rc     syscall.RawConn
	family int
	oob    []byte

	cut    ReadCanceller
	closed atomic.Bool
}

// Open opens a socket of the given type for proto on the family of addr
// (SOCK_RAW for raw probes, SOCK_DGRAM for unprivileged ICMP ping sockets).
func Open(addr netip.Addr, sockType, proto int) (*Conn, error) {
	family := unix.AF_INET
	if addr.Is6() && !addr.Is4In6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, sockType|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: %v", ErrPermission, err)
		}
		return nil, fmt.Errorf("socket: %w", err)
	}
	if err := setOptions(fd, family); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// netpoller: reads park the goroutine, deadlines and Close wake it.
	f := os.NewFile(uintptr(fd), "rawsock")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &Conn{f: f, rc: rc, family: family, oob: make([]byte, 256)}
	c.cut.SetReadDeadline = f.SetReadDeadline
	return c, nil
}

func setOptions(fd, family int) error {
	// Kernel receive timestamps make RTTs independent of our scheduling.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	// The drop counter tells replies lost in this host from loss on the path.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return fmt.Errorf("SO_RXQ_OVFL: %w", err)
	}
	if family == unix.AF_INET6 {
		// IPv6 raw sockets strip the header: ask for the hop limit apart, so
		// the path length can be estimated from replies as with IPv4's TTL.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1); err != nil {
			return fmt.Errorf("IPV6_RECVHOPLIMIT: %w", err)
		}
	}
	// SO_RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN; plain
	// SO_RCVBUF is capped by it but must not fail.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer); err != nil {
			return fmt.Errorf("SO_RCVBUF: %w", err)
		}
	}
	return nil
}

// control runs fn on the descriptor.
func (c *Conn) control(fn func(fd int) error) error {
	var ferr error
	if err := c.rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// Bind restricts the socket to our source address (and port, for ping sockets,
// where the kernel uses the port as the echo identifier).
func (c *Conn) Bind(addr netip.Addr, port uint16) error {
	sa, err := sockaddr(addr, port)
	if err != nil {
		return err
	}
	return c.control(func(fd int) error { return unix.Bind(fd, sa) })
}

// SetICMPv6Filter lets only the given ICMPv6 types through, so neighbour
// discovery chatter never reaches the receive loop.
func (c *Conn) SetICMPv6Filter(pass ...uint8) error {
	var f unix.ICMPv6Filter
	for i := range f.Data {
		f.Data[i] = 0xffffffff // block all
	}
	for _, t := range pass {
		f.Data[t>>5] &^= 1 << (uint32(t) & 31)
	}
	return c.control(func(fd int) error {
		return unix.SetsockoptICMPv6Filter(fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f)
	})
}

// AttachFilter installs a classic BPF program so the kernel drops what is
// not ours before it is copied to us.
func (c *Conn) AttachFilter(prog []bpf.Instruction) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	filters := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filters[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fp := unix.SockFprog{Len: uint16(len(filters)), Filter: &filters[0]}
	return c.control(func(fd int) error {
		return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
	})
}

// SetTTL sets the unicast TTL / hop limit of what the socket sends.
func (c *Conn) SetTTL(ttl int) error {
	return c.control(func(fd int) error {
		if c.family == unix.AF_INET6 {
			return unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
		}
		return unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
	})
}

// SetIPOptions sets the IPv4 options of what the socket sends (IP_OPTIONS;
// none when empty). The kernel checks them as it would a received header's.
func (c *Conn) SetIPOptions(opts []byte) error {
	if c.family != unix.AF_INET {
		return fmt.Errorf("IP options are IPv4's: %w", ErrUnsupported)
	}
	return c.control(func(fd int) error {
		return unix.SetsockoptString(fd, unix.IPPROTO_IP, unix.IP_OPTIONS, string(opts))
	})
}

// SendTo sends b to dst. A full socket waits in the netpoller; a moment
// without buffers (ENOBUFS, which no poll reports) is retried briefly
// rather than failing the probe at once.
func (c *Conn) SendTo(b []byte, dst netip.Addr, port uint16) error {
	sa, err := sockaddr(dst, port)
	if err != nil {
		return err
	}
	for tries := 0; ; tries++ {
		var serr error
		werr := c.rc.Write(func(fd uintptr) bool {
			serr = unix.Sendto(int(fd), b, 0, sa)
			return !errors.Is(serr, unix.EAGAIN)
		})
		if werr != nil {
			return werr
		}
		if errors.Is(serr, unix.ENOBUFS) && tries < 20 {
			_ = c.control(func(fd int) error {
				_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, 1)
				return err
			})
			continue
		}
		if serr != nil {
			return fmt.Errorf("sendto: %w", serr)
		}
		return nil
	}
}

// Receive waits for one datagram into buf, returning ctx's error once ctx
// is done and os.ErrClosed once the socket is closed.
func (c *Conn) Receive(ctx context.Context, buf []byte) (Packet, error) {
	defer c.cut.Watch(ctx)()
	var (
		n, oobn int
		from    unix.Sockaddr
		rerr    error
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, c.oob, 0)
			if !errors.Is(rerr, unix.EINTR) {
				return !errors.Is(rerr, unix.EAGAIN)
			}
		}
	})
	switch {
	case ctx.Err() != nil:
		return Packet{}, ctx.Err()
	case c.closed.Load():
		return Packet{}, os.ErrClosed
	case err != nil:
		return Packet{}, err
	case rerr != nil:
		return Packet{}, fmt.Errorf("recvmsg: %w", rerr)
	}
	cm := parseControl(c.oob[:oobn], timespecWord)
	if cm.at.IsZero() {
		cm.at = time.Now()
	}
	return Packet{Data: buf[:n], From: addrOf(from), At: cm.at, HopLimit: cm.hopLimit, Dropped: cm.dropped}, nil
}

// Close releases the socket; a Receive in progress returns os.ErrClosed at once.
func (c *Conn) Close() error {
	c.closed.Store(true)
	return c.f.Close()
}

// sockaddr is the socket address of a, with an IPv6 zone (fe80::1%eth0)
// turned into its interface index.
func sockaddr(a netip.Addr, port uint16) (unix.Sockaddr, error) {
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Addr: a.Unmap().As4(), Port: int(port)}, nil
	}
	sa := &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
	if zone := a.Zone(); zone != "" {
		id, err := zoneIndex(zone)
		if err != nil {
			return nil, err
		}
		sa.ZoneId = id
	}
	return sa, nil
}

func zoneIndex(zone string) (uint32, error) {
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n), nil
	}
	ifi, err := net.InterfaceByName(zone)
	if err != nil {
		return 0, fmt.Errorf("zone %q: %w", zone, err)
	}
	return uint32(ifi.Index), nil
}

func addrOf(sa unix.Sockaddr) netip.Addr {
	switch s := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(s.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(s.Addr)
	}
	return netip.Addr{}
}
