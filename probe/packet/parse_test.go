package packet

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// parser adapts the three parsers to one signature; v6 ones get the
// addresses recvmsg would report.
type parser struct {
	name     string
	from, to netip.Addr
}

var viaIPv4 = parser{name: "ipv4"}

func viaTCP6(from, to netip.Addr) parser  { return parser{"tcp6", from, to} }
func viaICMP6(from, to netip.Addr) parser { return parser{"icmp6", from, to} }

func (p parser) parse(b []byte) (Reply, error) {
	switch p.name {
	case "tcp6":
		return ParseTCP6(b, p.from, p.to)
	case "icmp6":
		return ParseICMP6(b, p.from, p.to)
	}
	return ParseIPv4(b)
}

// replyCase is one testdata file: how to craft it, which parser reads it,
// and the expected Reply or sentinel error.
type replyCase struct {
	file, comment string
	via           parser
	craft         func(t testing.TB) []byte
	want          Reply
	wantErr       error
}

// Probe pieces the replies answer or quote.
var (
	echoTuple4 = hash.FiveTuple{Src: us4, Dst: target4, Proto: hash.ProtoICMP, SrcPort: 0x1234}
	echoTuple6 = hash.FiveTuple{Src: us6, Dst: target6, Proto: hash.ProtoICMPv6, SrcPort: 0x1234}
	// expiringSYN4 is ipSYN4 as a router sees it when its TTL runs out.
	expiringSYN4 = SYN{Tuple: tuple4, Seq: 0x01020304, TTL: 1, IPID: 0x4242}
)

func mssOption(mss uint16) []byte { return []byte{2, 4, byte(mss >> 8), byte(mss)} }

func synAck4(t testing.TB) []byte {
	return craftIPv4(target4, us4, hash.ProtoTCP, 57, 0x1111, nil,
		craftTCP(target4, us4, 3306, 30000, 0xa0b0c0d0, 0x01020305, FlagSYN|FlagACK, mssOption(1460)))
}

func timeExceeded4(quoted []byte) []byte {
	return craftIPv4(router4, us4, hash.ProtoICMP, 254, 0x2222, nil,
		craftICMP(router4, us4, 11, 0, [4]byte{}, quoted))
}

func quotedSYN6(t testing.TB) []byte {
	syn := mustBuild(t)(AppendTCPSYN(nil, syn6))
	return append(craftIPv6Header(us6, target6, hash.ProtoTCP, 1, len(syn)), syn...)
}

// mplsExtension is an RFC 4884 extension structure holding one RFC 4950
// MPLS label stack object: label 16005, bottom of stack, TTL 1.
func mplsExtension() []byte {
	ext := []byte{0x20, 0, 0, 0, 0, 8, 1, 1}
	ext = binary.BigEndian.AppendUint32(ext, 16005<<12|1<<8|1)
	setChecksum(ext[2:4], ext)
	return ext
}

// padTo zero-pads the quoted datagram to n bytes, as RFC 4884 requires
// before an extension structure.
func padTo(b []byte, n int) []byte { return append(b, make([]byte, n-len(b))...) }

// edit returns a copy of b changed by f, for invalid variants.
func edit(b []byte, f func([]byte)) []byte {
	b = append([]byte(nil), b...)
	f(b)
	return b
}

// replyCases are all testdata reply cases; extensionReplyCases live in
// extension_test.go.
var replyCases = slices.Concat(coreReplyCases, extensionReplyCases)

var coreReplyCases = []replyCase{
	{
		file:    "valid-ipv4-synack.hex",
		comment: "IPv4 SYN-ACK 198.18.2.2:3306 -> 198.18.1.1:30000 answering the golden SYN: ack = 0x01020304+1, MSS option",
		via:     viaIPv4,
		craft:   synAck4,
		want: Reply{Kind: KindTCP, From: target4, To: us4, TTL: 57, IPID: 0x1111, Tuple: tuple4.Reverse(),
			Seq: 0xa0b0c0d0, Ack: 0x01020305, Flags: FlagSYN | FlagACK},
	},
	{
		file:    "valid-ipv4-rst.hex",
		comment: "IPv4 RST-ACK from a closed port answering the golden SYN",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return craftIPv4(target4, us4, hash.ProtoTCP, 57, 0, nil,
				craftTCP(target4, us4, 3306, 30000, 0, 0x01020305, FlagRST|FlagACK, nil))
		},
		want: Reply{Kind: KindTCP, From: target4, To: us4, TTL: 57, Tuple: tuple4.Reverse(),
			Ack: 0x01020305, Flags: FlagRST | FlagACK},
	},
	{
		file:    "valid-syn4-ipv4.hex",
		comment: "(builder golden, also parsed back)",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return mustBuild(t)(AppendIPv4TCPSYN(nil, ipSYN4)) },
		want: Reply{Kind: KindTCP, From: us4, To: target4, TTL: 5, IPID: 0xbeef, Tuple: tuple4,
			Seq: 0x01020304, Flags: FlagSYN},
	},
	{
		file:    "valid-ipv4-time-exceeded-syn.hex",
		comment: "ICMP time exceeded from router 198.18.0.1 quoting the IPv4 header + first 8 TCP bytes of a SYN (TTL 1, ID 0x4242)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return timeExceeded4(mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4))[:28])
		},
		want: Reply{Kind: KindICMPError, From: router4, To: us4, TTL: 254, IPID: 0x2222, Tuple: tuple4,
			ICMPType: 11, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1, QuotedIPID: 0x4242},
	},
	{
		file:    "valid-ipv4-time-exceeded-ip-options.hex",
		comment: "ICMP time exceeded with IP options in both the outer header and the quoted header (IHL 6)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			options := []byte{1, 1, 1, 0} // NOP NOP NOP EOL
			tcp := mustBuild(t)(AppendTCPSYN(nil, syn4))[:8]
			quoted := craftIPv4(us4, target4, hash.ProtoTCP, 1, 0x4343, options, tcp)
			return craftIPv4(router4, us4, hash.ProtoICMP, 254, 0x2222, options,
				craftICMP(router4, us4, 11, 0, [4]byte{}, quoted))
		},
		want: Reply{Kind: KindICMPError, From: router4, To: us4, TTL: 254, IPID: 0x2222, Tuple: tuple4,
			ICMPType: 11, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1, QuotedIPID: 0x4343},
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-mpls.hex",
		comment: "RFC 4884 extended ICMP time exceeded: length 32 words, quoted SYN padded to 128 bytes, then an MPLS label stack extension (RFC 4950)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			quoted := padTo(mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4)), 128)
			return craftIPv4(router4, us4, hash.ProtoICMP, 254, 0x2222, nil,
				craftICMP(router4, us4, 11, 0, [4]byte{0, 128 / 4, 0, 0}, append(quoted, mplsExtension()...)))
		},
		want: Reply{Kind: KindICMPError, From: router4, To: us4, TTL: 254, IPID: 0x2222, Tuple: tuple4,
			ICMPType: 11, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1, QuotedIPID: 0x4242,
			MPLS: []MPLSEntry{{Label: 16005, S: true, TTL: 1}}},
	},
	{
		file:    "valid-ipv4-port-unreachable-echo.hex",
		comment: "ICMP port unreachable (3/3) from the target quoting a whole echo request id 0x1234 seq 7",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			quoted := craftIPv4(us4, target4, hash.ProtoICMP, 60, 0x3333, nil, mustBuild(t)(AppendEcho(nil, echo4)))
			return craftIPv4(target4, us4, hash.ProtoICMP, 61, 0, nil,
				craftICMP(target4, us4, 3, 3, [4]byte{}, quoted))
		},
		want: Reply{Kind: KindICMPError, From: target4, To: us4, TTL: 61, Tuple: echoTuple4,
			ICMPType: 3, ICMPCode: 3, EchoID: 0x1234, EchoSeq: 7, QuotedProto: hash.ProtoICMP, QuotedTTL: 60, QuotedIPID: 0x3333},
	},
	{
		file:    "valid-ipv4-echo-reply.hex",
		comment: "ICMP echo reply id 0x1234 seq 7 from 198.18.2.2",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return craftIPv4(target4, us4, hash.ProtoICMP, 58, 0x4444, nil,
				craftICMP(target4, us4, 0, 0, idSeq(0x1234, 7), echo4.Payload))
		},
		want: Reply{Kind: KindEchoReply, From: target4, To: us4, TTL: 58, IPID: 0x4444, Tuple: echoTuple4.Reverse(),
			EchoID: 0x1234, EchoSeq: 7},
	},
	{
		file:    "valid-ipv4-echo-reply-timestamp-both.hex",
		comment: "ICMP echo reply from 198.18.0.1 whose timestamp option prespecified [198.18.0.1, 198.18.9.1] came back with both stamped (pointer 21), as Linux answers when it holds both",
		via:     viaIPv4,
		craft:   func(testing.TB) []byte { return stampedEcho4(stampedOption(21)) },
		want:    stampedEchoReply(router4, otherRouter4),
	},
	{
		file:    "valid-ipv4-echo-reply-timestamp-first.hex",
		comment: "the same reply with only the first address stamped (pointer 13): the second is not the answering router's",
		via:     viaIPv4,
		craft:   func(testing.TB) []byte { return stampedEcho4(stampedOption(13)) },
		want:    stampedEchoReply(router4),
	},
	{
		file:    "valid-ipv4-echo-reply-timestamp-length-beyond.hex",
		comment: "an echo reply whose timestamp option claims 40 bytes in 20 bytes of options: the reply stands, its stamps are unread",
		via:     viaIPv4,
		craft: func(testing.TB) []byte {
			opt := stampedOption(21)
			opt[1] = 40
			return stampedEcho4(opt)
		},
		want: stampedEchoReply(),
	},
	{
		file:    "valid-tcp6-synack.hex",
		comment: "TCP SYN-ACK [2001:db8:2::2]:3306 -> [2001:db8:1::2]:30000 as a raw IPv6 socket delivers it (no IPv6 header)",
		via:     viaTCP6(target6, us6),
		craft: func(t testing.TB) []byte {
			return craftTCP(target6, us6, 3306, 30000, 0xa0b0c0d0, 0x01020305, FlagSYN|FlagACK, mssOption(1440))
		},
		want: Reply{Kind: KindTCP, From: target6, To: us6, Tuple: tuple6.Reverse(),
			Seq: 0xa0b0c0d0, Ack: 0x01020305, Flags: FlagSYN | FlagACK},
	},
	{
		file:    "valid-syn6-tcp.hex",
		comment: "(builder golden, also parsed back)",
		via:     viaTCP6(us6, target6),
		craft:   func(t testing.TB) []byte { return mustBuild(t)(AppendTCPSYN(nil, syn6)) },
		want:    Reply{Kind: KindTCP, From: us6, To: target6, Tuple: tuple6, Seq: 0x01020304, Flags: FlagSYN},
	},
	{
		file:    "valid-icmp6-time-exceeded-syn.hex",
		comment: "ICMPv6 time exceeded from router 2001:db8:ff::1 quoting a whole IPv6 SYN (hop limit 1)",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 3, 0, [4]byte{}, quotedSYN6(t))
		},
		want: Reply{Kind: KindICMPError, From: router6, To: us6, Tuple: tuple6,
			ICMPType: 3, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1},
	},
	{
		file:    "valid-icmp6-time-exceeded-rfc4884-mpls.hex",
		comment: "RFC 4884 extended ICMPv6 time exceeded: length 16 64-bit words, quoted SYN padded to 128 bytes, MPLS extension",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			body := append(padTo(quotedSYN6(t), 128), mplsExtension()...)
			return craftICMP(router6, us6, 3, 0, [4]byte{128 / 8, 0, 0, 0}, body)
		},
		want: Reply{Kind: KindICMPError, From: router6, To: us6, Tuple: tuple6,
			ICMPType: 3, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1,
			MPLS: []MPLSEntry{{Label: 16005, S: true, TTL: 1}}},
	},
	{
		file:    "valid-icmp6-packet-too-big-syn.hex",
		comment: "ICMPv6 packet too big (MTU 1280) quoting an IPv6 SYN",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 2, 0, [4]byte{0, 0, 1280 >> 8, 1280 & 0xff}, quotedSYN6(t))
		},
		want: Reply{Kind: KindICMPError, From: router6, To: us6, Tuple: tuple6,
			ICMPType: 2, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1},
	},
	{
		file:    "valid-icmp6-port-unreachable-echo.hex",
		comment: "ICMPv6 port unreachable (1/4) from the target quoting an echo request id 0x1234 seq 7",
		via:     viaICMP6(target6, us6),
		craft: func(t testing.TB) []byte {
			echo := mustBuild(t)(AppendEcho(nil, echo6))
			quoted := append(craftIPv6Header(us6, target6, hash.ProtoICMPv6, 60, len(echo)), echo...)
			return craftICMP(target6, us6, 1, 4, [4]byte{}, quoted)
		},
		want: Reply{Kind: KindICMPError, From: target6, To: us6, Tuple: echoTuple6,
			ICMPType: 1, ICMPCode: 4, EchoID: 0x1234, EchoSeq: 7, QuotedProto: hash.ProtoICMPv6, QuotedTTL: 60},
	},
	{
		file:    "valid-icmp6-echo-reply.hex",
		comment: "ICMPv6 echo reply id 0x1234 seq 7 from 2001:db8:2::2",
		via:     viaICMP6(target6, us6),
		craft: func(t testing.TB) []byte {
			return craftICMP(target6, us6, 129, 0, idSeq(0x1234, 7), echo6.Payload)
		},
		want: Reply{Kind: KindEchoReply, From: target6, To: us6, Tuple: echoTuple6.Reverse(),
			ICMPType: 129, EchoID: 0x1234, EchoSeq: 7},
	},

	// Invalid and unsupported inputs. Checksums are left stale after
	// edits: the parsers do not verify them.
	{
		file: "invalid-ipv4-short-header.hex", comment: "12 bytes: less than an IPv4 header",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte { return synAck4(t)[:12] },
	},
	{
		file: "invalid-ipv4-ihl-beyond-end.hex", comment: "IHL 15 (60 bytes) in a 44-byte packet",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[0] = 0x4f }) },
	},
	{
		file: "invalid-ipv4-ihl-below-5.hex", comment: "IHL 4: shorter than the fixed IPv4 header",
		via: viaIPv4, wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[0] = 0x44 }) },
	},
	{
		file: "invalid-ipv4-version-6.hex", comment: "version nibble 6 in a packet read from an IPv4 socket",
		via: viaIPv4, wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[0] = 0x65 }) },
	},
	{
		file: "invalid-ipv4-total-length-beyond-end.hex", comment: "total length 44, only 40 bytes present",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte { return synAck4(t)[:40] },
	},
	{
		file: "invalid-ipv4-total-length-below-header.hex", comment: "total length 16, below the 20-byte header",
		via: viaIPv4, wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[2], b[3] = 0, 16 }) },
	},
	{
		file: "invalid-ipv4-tcp-offset-beyond-end.hex", comment: "TCP data offset 15 (60 bytes) in a 24-byte segment",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[20+12] = 0xf0 }) },
	},
	{
		file: "invalid-ipv4-tcp-offset-below-5.hex", comment: "TCP data offset 4: shorter than the fixed TCP header",
		via: viaIPv4, wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte { return edit(synAck4(t), func(b []byte) { b[20+12] = 0x40 }) },
	},
	{
		file: "invalid-ipv4-tcp-short.hex", comment: "IPv4 packet with only 12 bytes of TCP",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return craftIPv4(target4, us4, hash.ProtoTCP, 57, 0, nil, synAck4(t)[20:32])
		},
	},
	{
		file: "invalid-ipv4-icmp-short.hex", comment: "IPv4 packet with a 4-byte ICMP message",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return craftIPv4(router4, us4, hash.ProtoICMP, 254, 0, nil, []byte{11, 0, 0xf4, 0xff})
		},
	},
	{
		file: "invalid-ipv4-quoted-cut-short.hex", comment: "time exceeded quoting the IPv4 header but only 4 TCP bytes",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return timeExceeded4(mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4))[:24])
		},
	},
	{
		file: "invalid-ipv4-quoted-ihl-beyond-end.hex", comment: "time exceeded whose quoted header claims IHL 15 in 28 quoted bytes",
		via: viaIPv4, wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			quoted := edit(mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4))[:28], func(b []byte) { b[0] = 0x4f })
			return timeExceeded4(quoted)
		},
	},
	{
		file: "invalid-ipv4-quoted-ihl-below-5.hex", comment: "time exceeded whose quoted header has IHL 3",
		via: viaIPv4, wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte {
			quoted := edit(mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4))[:28], func(b []byte) { b[0] = 0x43 })
			return timeExceeded4(quoted)
		},
	},
	{
		file: "invalid-ipv4-quoted-udp.hex", comment: "time exceeded quoting a UDP datagram, which we never send",
		via: viaIPv4, wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte {
			udp := []byte{0x82, 0x9a, 0x82, 0xbe, 0, 8, 0, 0}
			return timeExceeded4(craftIPv4(us4, target4, 17, 1, 0x4242, nil, udp))
		},
	},
	{
		file: "invalid-ipv4-udp.hex", comment: "a UDP datagram",
		via: viaIPv4, wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte {
			return craftIPv4(target4, us4, 17, 57, 0, nil, []byte{0, 53, 0x82, 0x9a, 0, 8, 0, 0})
		},
	},
	{
		file: "invalid-ipv4-fragment.hex", comment: "the SYN-ACK bytes marked as a fragment at offset 1480",
		via: viaIPv4, wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte {
			return edit(synAck4(t), func(b []byte) { binary.BigEndian.PutUint16(b[6:], 1480/8) })
		},
	},
	{
		file: "invalid-ipv4-echo-request.hex", comment: "an ICMP echo request (ours, looped back)",
		via: viaIPv4, wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte {
			return craftIPv4(us4, target4, hash.ProtoICMP, 64, 0, nil, mustBuild(t)(AppendEcho(nil, echo4)))
		},
	},
	{
		file: "invalid-tcp6-short.hex", comment: "19 bytes of TCP",
		via: viaTCP6(target6, us6), wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return craftTCP(target6, us6, 3306, 30000, 1, 0x01020305, FlagRST|FlagACK, nil)[:19]
		},
	},
	{
		file: "invalid-tcp6-offset-beyond-end.hex", comment: "TCP data offset 15 (60 bytes) in a 24-byte segment",
		via: viaTCP6(target6, us6), wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			seg := craftTCP(target6, us6, 3306, 30000, 0xa0b0c0d0, 0x01020305, FlagSYN|FlagACK, mssOption(1440))
			return edit(seg, func(b []byte) { b[12] = 0xf0 })
		},
	},
	{
		file: "invalid-icmp6-quoted-cut-short.hex", comment: "time exceeded quoting only 30 bytes of the IPv6 header",
		via: viaICMP6(router6, us6), wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 3, 0, [4]byte{}, quotedSYN6(t)[:30])
		},
	},
	{
		file: "invalid-icmp6-quoted-transport-cut-short.hex", comment: "time exceeded quoting the IPv6 header and 4 TCP bytes",
		via: viaICMP6(router6, us6), wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 3, 0, [4]byte{}, quotedSYN6(t)[:44])
		},
	},
	{
		file: "invalid-icmp6-quoted-version-4.hex", comment: "time exceeded whose quoted header has version 4",
		via: viaICMP6(router6, us6), wantErr: ErrMalformed,
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 3, 0, [4]byte{}, edit(quotedSYN6(t), func(b []byte) { b[0] = 0x40 }))
		},
	},
	{
		file: "invalid-icmp6-quoted-extension-header.hex", comment: "time exceeded quoting a packet whose next header is hop-by-hop options",
		via: viaICMP6(router6, us6), wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte {
			return craftICMP(router6, us6, 3, 0, [4]byte{}, edit(quotedSYN6(t), func(b []byte) { b[6] = 0 }))
		},
	},
	{
		file: "invalid-icmp6-echo-request.hex", comment: "an ICMPv6 echo request (builder output)",
		via: viaICMP6(us6, target6), wantErr: ErrUnsupported,
		craft: func(t testing.TB) []byte { return mustBuild(t)(AppendEcho(nil, echo6)) },
	},
	{
		file: "invalid-icmp6-short.hex", comment: "a 6-byte ICMPv6 message",
		via: viaICMP6(router6, us6), wantErr: ErrTruncated,
		craft: func(t testing.TB) []byte { return []byte{3, 0, 0, 0, 0, 0} },
	},
}

func TestReplyCases(t *testing.T) {
	for _, tc := range replyCases {
		t.Run(tc.file, func(t *testing.T) {
			crafted := tc.craft(t)
			// Builder goldens are owned by TestBuilderGolden.
			if !isBuilderGolden(tc.file) {
				checkGolden(t, tc.file, tc.comment, crafted)
			}
			got, err := tc.via.parse(readHex(t, tc.file))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if !reflect.ValueOf(got).IsZero() {
					t.Errorf("error came with non-zero Reply %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func isBuilderGolden(file string) bool {
	for _, g := range builderGoldens {
		if g.file == file {
			return true
		}
	}
	return false
}

// TestEveryTestdataFileIsChecked keeps testdata honest: each .hex file
// must belong to a case, so none rots unverified.
func TestEveryTestdataFileIsChecked(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, g := range builderGoldens {
		known[g.file] = true
	}
	for _, tc := range replyCases {
		known[tc.file] = true
	}
	for _, f := range files {
		if !known[filepath.Base(f)] {
			t.Errorf("%s is not used by any test case", f)
		}
		delete(known, filepath.Base(f))
	}
	if !*update {
		for name := range known {
			if _, err := os.Stat(filepath.Join("testdata", name)); err != nil {
				t.Errorf("missing %s (run with -update)", name)
			}
		}
	}
}

func TestRoundTripSYNACK(t *testing.T) {
	// A SYN-ACK for a built SYN matches it by reversed tuple and ack.
	for _, s := range []SYN{syn4, syn6} {
		probe := mustBuild(t)(AppendTCPSYN(nil, s))
		seq := binary.BigEndian.Uint32(probe[4:])
		back := s.Tuple.Reverse()
		seg := craftTCP(back.Src, back.Dst, back.SrcPort, back.DstPort, 99, seq+1, FlagSYN|FlagACK, nil)
		var r Reply
		var err error
		if s.Tuple.Is6() {
			r, err = ParseTCP6(seg, back.Src, back.Dst)
		} else {
			r, err = ParseIPv4(craftIPv4(back.Src, back.Dst, hash.ProtoTCP, 60, 1, nil, seg))
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Tuple.Reverse() != s.Tuple || r.Ack != s.Seq+1 || r.Flags != FlagSYN|FlagACK {
			t.Errorf("reply %+v does not match probe %+v", r, s)
		}
	}
}

func TestIPv6ParsersRejectNonIPv6Addresses(t *testing.T) {
	seg := readHex(t, "valid-tcp6-synack.hex")
	mapped := netip.AddrFrom16(target4.As16())
	for _, pair := range [][2]netip.Addr{
		{target4, us4}, {mapped, us6}, {target6, {}}, {{}, us6},
	} {
		if _, err := ParseTCP6(seg, pair[0], pair[1]); !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("ParseTCP6 from %v to %v: error %v, want %v", pair[0], pair[1], err, ErrInvalidAddr)
		}
		if _, err := ParseICMP6(seg, pair[0], pair[1]); !errors.Is(err, ErrInvalidAddr) {
			t.Errorf("ParseICMP6 from %v to %v: error %v, want %v", pair[0], pair[1], err, ErrInvalidAddr)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindTCP: "tcp", KindEchoReply: "echo-reply", KindICMPError: "icmp-error", 0: "kind(0)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
