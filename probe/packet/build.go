package packet

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/ecmpscan/ecmpscan/hash"
)

const (
	defaultTTL    = 64
	defaultWindow = 65535
	// MSS values a typical Ethernet host would advertise; a SYN without
	// MSS looks odd to some firewalls and load balancers, which drop it.
	mssIPv4 = 1460
	mssIPv6 = 1440

	ipv4HeaderLen  = 20
	ipv6HeaderLen  = 40
	icmpHeaderLen  = 8
	maxIPv4Payload = 65535 - ipv4HeaderLen
	// The IPv6 payload length field covers everything after the fixed
	// header, so without jumbograms the ICMPv6 message is at most 65535.
	maxIPv6Payload = 65535
)

// SYN describes one TCP SYN probe.
type SYN struct {
	// Tuple must be TCP with non-zero ports and same-family, specified
	// addresses. IPv4-mapped IPv6 addresses count as IPv4.
	Tuple hash.FiveTuple
	Seq   uint32
	// TTL and IPID only appear in AppendIPv4TCPSYN output; with
	// AppendTCPSYN the socket sets them. TTL 0 means 64.
	TTL  uint8
	IPID uint16
	// Window 0 means 65535.
	Window uint16
	// SynAck sets ACK too, acknowledging Ack: a segment shaped like a
	// server's answer, for reverse probes on the answers' own tuple (a
	// device that drops only SYN-ACKs drops these too).
	SynAck bool
	Ack    uint32
}

// Echo describes one ICMP or ICMPv6 echo request; the family follows Dst.
type Echo struct {
	Src, Dst netip.Addr
	ID, Seq  uint16
	Payload  []byte
}

// scratch holds everything gopacket needs to serialize one probe, so that
// steady-state building does not allocate: gopacket's API works through a
// SerializeBuffer and layer structs, which the append API cannot accept
// from callers, so they are pooled here instead.
type scratch struct {
	buf     gopacket.SerializeBuffer
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	icmp4   layers.ICMPv4
	icmp6   layers.ICMPv6
	echo6   layers.ICMPv6Echo
	src     [16]byte
	dst     [16]byte
	mss     [2]byte
	tcpOpts [1]layers.TCPOption
}

var scratchPool = sync.Pool{New: func() any {
	// 128 bytes of headroom covers IPv4+TCP and small echo payloads; larger
	// payloads grow the buffer once and the pool keeps it.
	return &scratch{buf: gopacket.NewSerializeBufferExpectedSize(128, 0)}
}}

var serializeOpts = gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}

// AppendTCPSYN appends a TCP SYN header with an MSS option to dst. The
// checksum covers the IPv4 or IPv6 pseudo-header of s.Tuple, which is what
// a raw IPPROTO_TCP socket without IP_HDRINCL must be handed.
func AppendTCPSYN(dst []byte, s SYN) ([]byte, error) {
	src, dstAddr, is6, err := checkSYN(s)
	if err != nil {
		return dst, err
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	_ = sc.buf.Clear()
	if err := sc.serializeTCP(s, src, dstAddr, is6); err != nil {
		return dst, err
	}
	return append(dst, sc.buf.Bytes()...), nil
}

// AppendIPv4TCPSYN appends a complete IPv4 packet (20-byte header with
// s.TTL and s.IPID, DF clear, checksummed) carrying a TCP SYN, for sockets
// with IP_HDRINCL.
func AppendIPv4TCPSYN(dst []byte, s SYN) ([]byte, error) {
	src, dstAddr, is6, err := checkSYN(s)
	if err != nil {
		return dst, err
	}
	if is6 {
		return dst, fmt.Errorf("%w: IPv4 packet for IPv6 tuple %v", ErrFamilyMismatch, s.Tuple)
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	_ = sc.buf.Clear()
	if err := sc.serializeTCP(s, src, dstAddr, false); err != nil {
		return dst, err
	}
	// sc.ip4 was filled for the checksum; serialize it as the real header.
	if err := sc.ip4.SerializeTo(sc.buf, serializeOpts); err != nil {
		return dst, fmt.Errorf("packet: serialize IPv4: %w", err)
	}
	return append(dst, sc.buf.Bytes()...), nil
}

// AppendEcho appends an ICMP echo request (type 8) for an IPv4 Dst or an
// ICMPv6 echo request (type 128, checksum over the IPv6 pseudo-header) for
// an IPv6 Dst. Only the ICMP message is appended, no IP header.
func AppendEcho(dst []byte, e Echo) ([]byte, error) {
	src, dstAddr, is6, err := checkPair(e.Src, e.Dst)
	if err != nil {
		return dst, err
	}
	limit := maxIPv4Payload - icmpHeaderLen
	if is6 {
		limit = maxIPv6Payload - icmpHeaderLen
	}
	if len(e.Payload) > limit {
		return dst, fmt.Errorf("%w: %d-byte echo payload, limit %d", ErrPayloadTooLarge, len(e.Payload), limit)
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	_ = sc.buf.Clear()
	if err := gopacket.Payload(e.Payload).SerializeTo(sc.buf, serializeOpts); err != nil {
		return dst, fmt.Errorf("packet: serialize echo payload: %w", err)
	}
	if is6 {
		sc.setIPv6(src, dstAddr, layers.IPProtocolICMPv6)
		sc.echo6 = layers.ICMPv6Echo{Identifier: e.ID, SeqNumber: e.Seq}
		sc.icmp6 = layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeEchoRequest, 0)}
		if err := sc.icmp6.SetNetworkLayerForChecksum(&sc.ip6); err != nil {
			return dst, fmt.Errorf("packet: ICMPv6 checksum: %w", err)
		}
		if err := sc.echo6.SerializeTo(sc.buf, serializeOpts); err != nil {
			return dst, fmt.Errorf("packet: serialize ICMPv6 echo: %w", err)
		}
		if err := sc.icmp6.SerializeTo(sc.buf, serializeOpts); err != nil {
			return dst, fmt.Errorf("packet: serialize ICMPv6: %w", err)
		}
	} else {
		sc.icmp4 = layers.ICMPv4{
			TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeEchoRequest, 0),
			Id:       e.ID,
			Seq:      e.Seq,
		}
		if err := sc.icmp4.SerializeTo(sc.buf, serializeOpts); err != nil {
			return dst, fmt.Errorf("packet: serialize ICMPv4: %w", err)
		}
	}
	return append(dst, sc.buf.Bytes()...), nil
}

// serializeTCP writes the SYN into sc.buf, leaving sc.ip4 or sc.ip6 set up
// as the pseudo-header source.
func (sc *scratch) serializeTCP(s SYN, src, dst netip.Addr, is6 bool) error {
	window := s.Window
	if window == 0 {
		window = defaultWindow
	}
	mss := uint16(mssIPv4)
	if is6 {
		mss = mssIPv6
	}
	binary.BigEndian.PutUint16(sc.mss[:], mss)
	sc.tcpOpts[0] = layers.TCPOption{OptionType: layers.TCPOptionKindMSS, OptionData: sc.mss[:]}
	sc.tcp = layers.TCP{
		SrcPort: layers.TCPPort(s.Tuple.SrcPort),
		DstPort: layers.TCPPort(s.Tuple.DstPort),
		Seq:     s.Seq,
		SYN:     true,
		ACK:     s.SynAck,
		Window:  window,
		Options: sc.tcpOpts[:],
	}
	if s.SynAck {
		sc.tcp.Ack = s.Ack
	}
	var err error
	if is6 {
		sc.setIPv6(src, dst, layers.IPProtocolTCP)
		err = sc.tcp.SetNetworkLayerForChecksum(&sc.ip6)
	} else {
		sc.setIPv4(src, dst, s)
		err = sc.tcp.SetNetworkLayerForChecksum(&sc.ip4)
	}
	if err != nil {
		return fmt.Errorf("packet: TCP checksum: %w", err)
	}
	if err := sc.tcp.SerializeTo(sc.buf, serializeOpts); err != nil {
		return fmt.Errorf("packet: serialize TCP: %w", err)
	}
	return nil
}

// setIPv4 fills sc.ip4 with addresses backed by sc's arrays (no allocation)
// and the header fields AppendIPv4TCPSYN emits.
func (sc *scratch) setIPv4(src, dst netip.Addr, s SYN) {
	ttl := s.TTL
	if ttl == 0 {
		ttl = defaultTTL
	}
	*(*[4]byte)(sc.src[:4]) = src.As4()
	*(*[4]byte)(sc.dst[:4]) = dst.As4()
	sc.ip4 = layers.IPv4{
		Version:  4,
		TTL:      ttl,
		Id:       s.IPID,
		Protocol: layers.IPProtocolTCP,
		SrcIP:    sc.src[:4],
		DstIP:    sc.dst[:4],
	}
}

// setIPv6 fills sc.ip6; it is only used as the checksum pseudo-header.
func (sc *scratch) setIPv6(src, dst netip.Addr, next layers.IPProtocol) {
	sc.src = src.As16()
	sc.dst = dst.As16()
	sc.ip6 = layers.IPv6{Version: 6, NextHeader: next, SrcIP: sc.src[:], DstIP: sc.dst[:]}
}

func checkSYN(s SYN) (src, dst netip.Addr, is6 bool, err error) {
	t := s.Tuple
	if t.Proto != hash.ProtoTCP {
		return src, dst, false, fmt.Errorf("%w: protocol %d", ErrNotTCP, t.Proto)
	}
	if t.SrcPort == 0 || t.DstPort == 0 {
		return src, dst, false, fmt.Errorf("%w: %v", ErrZeroPort, t)
	}
	return checkPair(t.Src, t.Dst)
}

// checkPair validates a source/destination pair and returns it unmapped,
// so IPv4-mapped IPv6 addresses are treated as IPv4 like hash.FiveTuple.Is6
// does. Unspecified addresses are refused because the checksum depends on
// the real source.
func checkPair(src, dst netip.Addr) (netip.Addr, netip.Addr, bool, error) {
	src, dst = src.Unmap(), dst.Unmap()
	if !src.IsValid() || src.IsUnspecified() {
		return src, dst, false, fmt.Errorf("%w: source %v", ErrInvalidAddr, src)
	}
	if !dst.IsValid() || dst.IsUnspecified() {
		return src, dst, false, fmt.Errorf("%w: destination %v", ErrInvalidAddr, dst)
	}
	if src.Is4() != dst.Is4() {
		return src, dst, false, fmt.Errorf("%w: %v -> %v", ErrFamilyMismatch, src, dst)
	}
	return src, dst, dst.Is6(), nil
}
