// Package route asks the kernel which first hop it sends a flow to: a
// route lookup (rtnetlink RTM_GETROUTE, what `ip route get DST from SRC
// ipproto P sport S dport D` does), so the answer follows policy rules and
// the multipath hash as the flow's own packets do. A trace uses it to name
// a first hop that answers no probe. The request and reply are pure
// functions over []byte here; the socket is in route_linux.go, and other
// systems have no lookup (ErrUnsupported).
package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Sentinel errors; the parser wraps them with what it found.
var (
	// ErrUnsupported: this system has no route lookup.
	ErrUnsupported = errors.New("route lookup not supported on this system")
	// ErrShort: a message or attribute is cut short.
	ErrShort = errors.New("netlink message too short")
	// ErrNoRoute: the kernel refused the lookup (no route, unreachable).
	ErrNoRoute = errors.New("no route")
	// ErrNoReply: no route message answered the request.
	ErrNoReply = errors.New("no route reply")
)

// Query is the flow to look up: from Src (may be invalid: the kernel
// picks) to Dst, with the transport protocol and ports the multipath hash
// reads.
type Query struct {
	Src, Dst     netip.Addr
	Proto        uint8
	Sport, Dport uint16
}

// Route is the kernel's answer: the gateway the flow leaves by, invalid
// when the destination is on-link, and the outgoing interface's index.
type Route struct {
	Gateway netip.Addr
	OIF     uint32
}

// rtnetlink numbers (linux/rtnetlink.h, linux/netlink.h), written out so
// the codec builds and is tested everywhere.
const (
	nlmsgHdrLen  = 16
	rtmsgLen     = 12
	nlmsgError   = 2
	nlmsgDone    = 3
	rtmNewRoute  = 24
	rtmGetRoute  = 26
	nlmFRequest  = 1
	rtaDst       = 1
	rtaSrc       = 2
	rtaOIF       = 4
	rtaGateway   = 5
	rtaVia       = 18
	rtaIPProto   = 27
	rtaSport     = 28
	rtaDport     = 29
	afInet       = 2
	afInet6      = 10
	rtmFLookupTb = 0x1000 // RTM_F_LOOKUP_TABLE: the table's route, no cache
)

// Request is the RTM_GETROUTE message for q with sequence number seq.
func Request(q Query, seq uint32) ([]byte, error) {
	if !q.Dst.IsValid() || (q.Src.IsValid() && q.Src.Is4() != q.Dst.Is4()) {
		return nil, fmt.Errorf("route lookup: bad addresses %v -> %v", q.Src, q.Dst)
	}
	dst := q.Dst.Unmap()
	family, bits := byte(afInet), byte(32)
	if dst.Is6() {
		family, bits = afInet6, 128
	}
	b := make([]byte, nlmsgHdrLen+rtmsgLen, 96)
	binary.NativeEndian.PutUint16(b[4:], rtmGetRoute)
	binary.NativeEndian.PutUint16(b[6:], nlmFRequest)
	binary.NativeEndian.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0], r[1] = family, bits // rtm_family, rtm_dst_len
	if q.Src.IsValid() {
		r[2] = bits // rtm_src_len
	}
	binary.NativeEndian.PutUint32(r[8:], rtmFLookupTb)
	b = appendAttr(b, rtaDst, dst.AsSlice())
	if q.Src.IsValid() {
		b = appendAttr(b, rtaSrc, q.Src.Unmap().AsSlice())
	}
	if q.Proto != 0 {
		b = appendAttr(b, rtaIPProto, []byte{q.Proto})
		b = appendAttr(b, rtaSport, binary.BigEndian.AppendUint16(nil, q.Sport))
		b = appendAttr(b, rtaDport, binary.BigEndian.AppendUint16(nil, q.Dport))
	}
	binary.NativeEndian.PutUint32(b[0:], uint32(len(b)))
	return b, nil
}

// appendAttr appends one rtattr, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// ParseReply reads the kernel's answer to the request numbered seq: the
// route, ErrNoRoute (wrapping the errno) when the kernel refused, or
// ErrNoReply when the bytes hold no answer to it. Other messages are
// skipped.
func ParseReply(b []byte, seq uint32) (Route, error) {
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return Route{}, fmt.Errorf("%w: %d bytes of a header", ErrShort, len(b))
		}
		n := int(binary.NativeEndian.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return Route{}, fmt.Errorf("%w: length %d of %d bytes", ErrShort, n, len(b))
		}
		typ, mseq := binary.NativeEndian.Uint16(b[4:]), binary.NativeEndian.Uint32(b[8:])
		body := b[nlmsgHdrLen:n]
		b = after(b, n)
		if mseq != seq {
			continue
		}
		switch typ {
		case nlmsgError:
			if len(body) < 4 {
				return Route{}, fmt.Errorf("%w: error message of %d bytes", ErrShort, len(body))
			}
			errno := -int32(binary.NativeEndian.Uint32(body))
			if errno == 0 {
				continue // an acknowledgement
			}
			return Route{}, fmt.Errorf("%w (errno %d)", ErrNoRoute, errno)
		case nlmsgDone:
			return Route{}, ErrNoReply
		case rtmNewRoute:
			return parseRoute(body)
		}
	}
	return Route{}, ErrNoReply
}

// parseRoute reads an rtmsg and its attributes.
func parseRoute(b []byte) (Route, error) {
	if len(b) < rtmsgLen {
		return Route{}, fmt.Errorf("%w: route message of %d bytes", ErrShort, len(b))
	}
	var r Route
	for a := b[rtmsgLen:]; len(a) > 0; {
		if len(a) < 4 {
			return Route{}, fmt.Errorf("%w: %d bytes of an attribute", ErrShort, len(a))
		}
		n := int(binary.NativeEndian.Uint16(a[0:]))
		if n < 4 || n > len(a) {
			return Route{}, fmt.Errorf("%w: attribute length %d of %d bytes", ErrShort, n, len(a))
		}
		typ, data := binary.NativeEndian.Uint16(a[2:])&0x3fff, a[4:n]
		switch typ {
		case rtaGateway:
			if addr, ok := netip.AddrFromSlice(data); ok {
				r.Gateway = addr
			}
		case rtaVia:
			// An IPv4 route via an IPv6 gateway: family, then the address.
			if len(data) > 2 {
				if addr, ok := netip.AddrFromSlice(data[2:]); ok {
					r.Gateway = addr
				}
			}
		case rtaOIF:
			if len(data) >= 4 {
				r.OIF = binary.NativeEndian.Uint32(data)
			}
		}
		a = after(a, n)
	}
	return r, nil
}

// Zoned gives a link-local gateway its interface's name (fe80::1%eth0):
// without it the address names no router. name looks an interface index
// up; the route is unchanged when it fails.
func (r Route) Zoned(name func(int) (string, error)) Route {
	if !r.Gateway.IsLinkLocalUnicast() || r.Gateway.Zone() != "" || r.OIF == 0 {
		return r
	}
	if n, err := name(int(r.OIF)); err == nil && n != "" {
		r.Gateway = r.Gateway.WithZone(n)
	}
	return r
}

// after is what follows a record of n bytes at the start of b, padded to
// 4 bytes; nil when nothing does.
func after(b []byte, n int) []byte {
	if next := (n + 3) &^ 3; next < len(b) {
		return b[next:]
	}
	return nil
}
