package packet

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
)

const (
	tcpMinHeaderLen = 20
	// RFC 792 only promises the IP header plus 8 bytes of the original
	// datagram in an ICMP error: ports and sequence number for TCP, the
	// whole echo header for ICMP.
	quotedTransportLen = 8

	icmp4EchoReply       = 0
	icmp4DestUnreachable = 3
	icmp4EchoRequest     = 8
	icmp4TimeExceeded    = 11
	icmp4ParamProblem    = 12

	icmp6DestUnreachable = 1
	icmp6PacketTooBig    = 2
	icmp6TimeExceeded    = 3
	icmp6ParamProblem    = 4
	icmp6EchoRequest     = 128
	icmp6EchoReply       = 129
)

// ParseIPv4 parses a complete IPv4 packet, as a raw AF_INET socket delivers
// it, carrying a TCP segment or an ICMP echo reply or error.
func ParseIPv4(b []byte) (Reply, error) {
	h, err := readIPv4Header(b)
	if err != nil {
		return Reply{}, err
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total < h.headerLen {
		return Reply{}, fmt.Errorf("%w: IPv4 total length %d below header length %d", ErrMalformed, total, h.headerLen)
	}
	if total > len(b) {
		return Reply{}, fmt.Errorf("%w: IPv4 total length %d, have %d bytes", ErrTruncated, total, len(b))
	}
	if h.fragOffset != 0 {
		return Reply{}, fmt.Errorf("%w: IPv4 fragment at offset %d", ErrUnsupported, h.fragOffset)
	}
	payload := b[h.headerLen:total]
	var r Reply
	switch h.proto {
	case hash.ProtoTCP:
		r, err = parseTCP(payload, h.src, h.dst)
	case hash.ProtoICMP:
		r, err = parseICMPv4(payload, h.src, h.dst)
	default:
		return Reply{}, fmt.Errorf("%w: IP protocol %d", ErrUnsupported, h.proto)
	}
	if err != nil {
		return Reply{}, err
	}
	r.TTL, r.IPID = h.ttl, h.id
	// Unreadable options leave the reply as it is: they are the routers'
	// to mangle, and only the alias test reads them.
	r.Stamped, _ = Stamped(b[ipv4HeaderLen:h.headerLen])
	return r, nil
}

// ParseTCP6 parses a TCP segment read from a raw AF_INET6 socket, which
// strips the IPv6 header; src and dst are the addresses from recvmsg.
func ParseTCP6(b []byte, src, dst netip.Addr) (Reply, error) {
	if err := checkIPv6Pair(src, dst); err != nil {
		return Reply{}, err
	}
	return parseTCP(b, src, dst)
}

// ParseICMP6 parses an ICMPv6 message read from a raw AF_INET6 socket; src
// and dst are the addresses from recvmsg.
func ParseICMP6(b []byte, src, dst netip.Addr) (Reply, error) {
	if err := checkIPv6Pair(src, dst); err != nil {
		return Reply{}, err
	}
	if len(b) < icmpHeaderLen {
		return Reply{}, fmt.Errorf("%w: ICMPv6 message of %d bytes", ErrTruncated, len(b))
	}
	r := Reply{From: src, To: dst, ICMPType: b[0], ICMPCode: b[1]}
	switch b[0] {
	case icmp6EchoReply:
		r.setEchoReply(b, hash.ProtoICMPv6)
		return r, nil
	case icmp6DestUnreachable, icmp6PacketTooBig, icmp6TimeExceeded, icmp6ParamProblem:
		// The quoted packet starts right after the 8-byte header whether
		// or not an RFC 4884 extension follows it.
		if err := r.setQuotedIPv6(b[icmpHeaderLen:]); err != nil {
			return Reply{}, err
		}
		// RFC 4884 section 4: only destination unreachable and time
		// exceeded carry the length attribute, in byte 4, in 64-bit words.
		// Packet too big and parameter problem use those bytes for the
		// MTU and pointer.
		if b[0] == icmp6DestUnreachable || b[0] == icmp6TimeExceeded {
			r.setExtension(b[icmpHeaderLen:], int(b[4])*8)
		}
		return r, nil
	}
	return Reply{}, fmt.Errorf("%w: ICMPv6 type %d code %d", ErrUnsupported, b[0], b[1])
}

// ParseICMP4 parses an ICMP message without its IPv4 header, as an
// unprivileged ICMP (ping) socket delivers it; src and dst come from recvmsg.
func ParseICMP4(b []byte, src, dst netip.Addr) (Reply, error) {
	if !src.Is4() || !dst.Is4() {
		return Reply{}, fmt.Errorf("%w: %v -> %v is not an IPv4 pair", ErrInvalidAddr, src, dst)
	}
	return parseICMPv4(b, src, dst)
}

func checkIPv6Pair(src, dst netip.Addr) error {
	if !src.Is6() || src.Is4In6() || !dst.Is6() || dst.Is4In6() {
		return fmt.Errorf("%w: %v -> %v is not an IPv6 pair", ErrInvalidAddr, src, dst)
	}
	return nil
}

// ipv4Header is the part of an IPv4 header the parsers use.
type ipv4Header struct {
	headerLen  int
	id         uint16
	fragOffset uint16 // in 8-byte units
	ttl, proto uint8
	src, dst   netip.Addr
}

// readIPv4Header validates version and IHL against len(b). The total length
// is left to the caller: quoted headers are truncated by design.
func readIPv4Header(b []byte) (ipv4Header, error) {
	if len(b) < ipv4HeaderLen {
		return ipv4Header{}, fmt.Errorf("%w: IPv4 header needs %d bytes, have %d", ErrTruncated, ipv4HeaderLen, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return ipv4Header{}, fmt.Errorf("%w: IP version %d, want 4", ErrMalformed, v)
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipv4HeaderLen {
		return ipv4Header{}, fmt.Errorf("%w: IPv4 header length %d", ErrMalformed, ihl)
	}
	if ihl > len(b) {
		return ipv4Header{}, fmt.Errorf("%w: IPv4 header length %d, have %d bytes", ErrTruncated, ihl, len(b))
	}
	return ipv4Header{
		headerLen:  ihl,
		id:         binary.BigEndian.Uint16(b[4:6]),
		fragOffset: binary.BigEndian.Uint16(b[6:8]) & 0x1fff,
		ttl:        b[8],
		proto:      b[9],
		src:        netip.AddrFrom4([4]byte(b[12:16])),
		dst:        netip.AddrFrom4([4]byte(b[16:20])),
	}, nil
}

// parseTCP reads a TCP segment sent from src to dst. Options and payload are
// not interpreted, but the data offset must fit.
func parseTCP(b []byte, src, dst netip.Addr) (Reply, error) {
	if len(b) < tcpMinHeaderLen {
		return Reply{}, fmt.Errorf("%w: TCP header needs %d bytes, have %d", ErrTruncated, tcpMinHeaderLen, len(b))
	}
	offset := int(b[12]>>4) * 4
	if offset < tcpMinHeaderLen {
		return Reply{}, fmt.Errorf("%w: TCP data offset %d", ErrMalformed, offset)
	}
	if offset > len(b) {
		return Reply{}, fmt.Errorf("%w: TCP data offset %d, have %d bytes", ErrTruncated, offset, len(b))
	}
	return Reply{
		Kind: KindTCP,
		From: src,
		To:   dst,
		Tuple: hash.FiveTuple{
			Src:     src,
			Dst:     dst,
			Proto:   hash.ProtoTCP,
			SrcPort: binary.BigEndian.Uint16(b[0:2]),
			DstPort: binary.BigEndian.Uint16(b[2:4]),
		},
		Seq:   binary.BigEndian.Uint32(b[4:8]),
		Ack:   binary.BigEndian.Uint32(b[8:12]),
		Flags: b[13],
	}, nil
}

func parseICMPv4(b []byte, src, dst netip.Addr) (Reply, error) {
	if len(b) < icmpHeaderLen {
		return Reply{}, fmt.Errorf("%w: ICMP message of %d bytes", ErrTruncated, len(b))
	}
	r := Reply{From: src, To: dst, ICMPType: b[0], ICMPCode: b[1]}
	switch b[0] {
	case icmp4EchoReply:
		r.setEchoReply(b, hash.ProtoICMP)
		return r, nil
	case icmp4DestUnreachable, icmp4TimeExceeded, icmp4ParamProblem:
		// The quoted packet starts at byte 8 regardless of extensions; the
		// RFC 4884 length attribute (byte 5, in 32-bit words, section 4)
		// only locates them.
		if err := r.setQuotedIPv4(b[icmpHeaderLen:]); err != nil {
			return Reply{}, err
		}
		r.setExtension(b[icmpHeaderLen:], int(b[5])*4)
		return r, nil
	}
	return Reply{}, fmt.Errorf("%w: ICMP type %d code %d", ErrUnsupported, b[0], b[1])
}

// setEchoReply fills an echo reply from its ICMP message (at least 8 bytes).
// The tuple is the reverse of the probe's, so the identifier is DstPort.
func (r *Reply) setEchoReply(b []byte, proto uint8) {
	r.Kind = KindEchoReply
	r.EchoID = binary.BigEndian.Uint16(b[4:6])
	r.EchoSeq = binary.BigEndian.Uint16(b[6:8])
	r.Tuple = hash.FiveTuple{Src: r.From, Dst: r.To, Proto: proto, DstPort: r.EchoID}
}

// setQuotedIPv4 reads the packet quoted by an ICMPv4 error: an IPv4 header
// with its own IHL, then at least 8 transport bytes.
func (r *Reply) setQuotedIPv4(q []byte) error {
	h, err := readIPv4Header(q)
	if err != nil {
		return fmt.Errorf("quoted packet: %w", err)
	}
	if h.fragOffset != 0 {
		// A non-first fragment quotes no transport header to match on.
		return fmt.Errorf("%w: quoted IPv4 fragment at offset %d", ErrUnsupported, h.fragOffset)
	}
	r.QuotedTTL = h.ttl
	r.QuotedIPID = h.id
	return r.setQuotedTransport(q[h.headerLen:], h.proto, h.src, h.dst, hash.ProtoICMP, icmp4EchoRequest)
}

// setQuotedIPv6 reads the packet quoted by an ICMPv6 error: a 40-byte IPv6
// header directly followed by TCP or ICMPv6. Our probes carry no extension
// headers, so a quoted extension header cannot be one of them.
func (r *Reply) setQuotedIPv6(q []byte) error {
	if len(q) < ipv6HeaderLen {
		return fmt.Errorf("quoted packet: %w: IPv6 header needs %d bytes, have %d", ErrTruncated, ipv6HeaderLen, len(q))
	}
	if v := q[0] >> 4; v != 6 {
		return fmt.Errorf("quoted packet: %w: IP version %d, want 6", ErrMalformed, v)
	}
	r.QuotedTTL = q[7]
	src := netip.AddrFrom16([16]byte(q[8:24]))
	dst := netip.AddrFrom16([16]byte(q[24:40]))
	return r.setQuotedTransport(q[ipv6HeaderLen:], q[6], src, dst, hash.ProtoICMPv6, icmp6EchoRequest)
}

// setQuotedTransport reads the first 8 bytes of the quoted TCP header or
// echo request and makes r a KindICMPError carrying the probe's tuple.
func (r *Reply) setQuotedTransport(t []byte, proto uint8, src, dst netip.Addr, icmpProto, echoRequest uint8) error {
	switch proto {
	case hash.ProtoTCP, icmpProto:
	default:
		return fmt.Errorf("%w: quoted protocol %d", ErrUnsupported, proto)
	}
	if len(t) < quotedTransportLen {
		return fmt.Errorf("quoted packet: %w: transport header needs %d bytes, have %d", ErrTruncated, quotedTransportLen, len(t))
	}
	r.Kind = KindICMPError
	r.QuotedProto = proto
	r.Tuple = hash.FiveTuple{Src: src, Dst: dst, Proto: proto}
	if proto == hash.ProtoTCP {
		r.Tuple.SrcPort = binary.BigEndian.Uint16(t[0:2])
		r.Tuple.DstPort = binary.BigEndian.Uint16(t[2:4])
		r.QuotedSeq = binary.BigEndian.Uint32(t[4:8])
		return nil
	}
	if t[0] != echoRequest {
		return fmt.Errorf("%w: quoted ICMP type %d is not an echo request", ErrUnsupported, t[0])
	}
	r.EchoID = binary.BigEndian.Uint16(t[4:6])
	r.EchoSeq = binary.BigEndian.Uint16(t[6:8])
	r.Tuple.SrcPort = r.EchoID
	return nil
}
