// Package rawsock is the thin Linux layer under the probers: raw and ping
// sockets opened with explicit options, kernel receive timestamps, and a
// receive that returns when its context ends.
package rawsock

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// ErrPermission means the process lacks CAP_NET_RAW.
var ErrPermission = errors.New("operation needs root or CAP_NET_RAW")

// pollEvery bounds how long a receive blocks before it looks at its context.
const pollEvery = 50 * time.Millisecond

// Conn is one raw (or ping) socket.
type Conn struct {
	fd     int
	family int
	oob    []byte
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
	c := &Conn{fd: fd, family: family, oob: make([]byte, 256)}
	// Kernel receive timestamps make RTTs independent of our scheduling.
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		c.Close()
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	if family == unix.AF_INET6 {
		// IPv6 raw sockets strip the header: ask for the hop limit apart, so
		// the path length can be estimated from replies as with IPv4's TTL.
		_ = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1)
	}
	// A deep receive buffer keeps fast sweeps from overrunning the socket.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	return c, nil
}

// Bind restricts the socket to our source address (and port, for ping sockets,
// where the kernel uses the port as the echo identifier).
func (c *Conn) Bind(addr netip.Addr, port uint16) error {
	return unix.Bind(c.fd, sockaddr(addr, port))
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
	return unix.SetsockoptICMPv6Filter(c.fd, unix.SOL_ICMPV6, unix.ICMPV6_FILTER, &f)
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
	return unix.SetsockoptSockFprog(c.fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}

// SetTTL sets the unicast TTL / hop limit of what the socket sends.
func (c *Conn) SetTTL(ttl int) error {
	if c.family == unix.AF_INET6 {
		return unix.SetsockoptInt(c.fd, unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, ttl)
	}
	return unix.SetsockoptInt(c.fd, unix.IPPROTO_IP, unix.IP_TTL, ttl)
}

// SendTo sends b to dst. It waits briefly for buffer space rather than
// failing a probe because the socket was momentarily full.
func (c *Conn) SendTo(b []byte, dst netip.Addr, port uint16) error {
	sa := sockaddr(dst, port)
	for tries := 0; ; tries++ {
		err := unix.Sendto(c.fd, b, 0, sa)
		if (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.ENOBUFS)) && tries < 100 {
			fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(fds, 10)
			continue
		}
		if errors.Is(err, unix.EPERM) {
			// Raw sends fail with EPERM when a firewall rejects them.
			return fmt.Errorf("sendto: %w", err)
		}
		return err
	}
}

// Packet is one received datagram.
type Packet struct {
	Data []byte // valid until the next Receive
	From netip.Addr
	At   time.Time // kernel receive time, or our clock when absent
	// HopLimit is the IPv6 hop limit the packet arrived with; 0 if unknown.
	HopLimit uint8
}

// Receive waits for one datagram into buf, returning ctx's error once ctx is done.
func (c *Conn) Receive(ctx context.Context, buf []byte) (Packet, error) {
	for {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, c.oob, 0)
		if err == nil {
			at, hops := control(c.oob[:oobn])
			return Packet{Data: buf[:n], From: addrOf(from), At: at, HopLimit: hops}, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			return Packet{}, fmt.Errorf("recvmsg: %w", err)
		}
		if ctx.Err() != nil {
			return Packet{}, ctx.Err()
		}
		fds := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(pollEvery/time.Millisecond)); err != nil && !errors.Is(err, unix.EINTR) {
			return Packet{}, fmt.Errorf("poll: %w", err)
		}
	}
}

// Close releases the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// control reads the kernel receive timestamp and the IPv6 hop limit from
// the control messages, each only when present and long enough.
func control(oob []byte) (at time.Time, hopLimit uint8) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			switch {
			case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16:
				// struct timespec: two native-endian 64-bit words on 64-bit Linux.
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				at = time.Unix(sec, nsec)
			case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
				if v := binary.NativeEndian.Uint32(m.Data[0:4]); v <= 255 {
					hopLimit = uint8(v)
				}
			}
		}
	}
	if at.IsZero() {
		at = time.Now()
	}
	return at, hopLimit
}

func sockaddr(a netip.Addr, port uint16) unix.Sockaddr {
	if a.Is4() || a.Is4In6() {
		return &unix.SockaddrInet4{Addr: a.Unmap().As4(), Port: int(port)}
	}
	return &unix.SockaddrInet6{Addr: a.As16(), Port: int(port)}
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
