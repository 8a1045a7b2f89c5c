package packet

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"golang.org/x/net/icmp"

	"github.com/ecmpscan/ecmpscan/hash"
)

// RFC 4884 / RFC 4950 crafting helpers, written from the RFCs rather than
// from extension.go.

// labelEntry encodes an RFC 3032 label stack entry: label(20) TC(3) S(1)
// TTL(8).
func labelEntry(e MPLSEntry) []byte {
	v := e.Label<<12 | uint32(e.TC)<<9 | uint32(e.TTL)
	if e.S {
		v |= 1 << 8
	}
	return binary.BigEndian.AppendUint32(nil, v)
}

// extObject is an RFC 4884 section 7 object whose length field covers the
// 4-byte header and the payload.
func extObject(class, ctype uint8, payload []byte) []byte {
	o := []byte{0, 0, class, ctype}
	binary.BigEndian.PutUint16(o, uint16(4+len(payload)))
	return append(o, payload...)
}

// mplsObject is an RFC 4950 incoming MPLS label stack object.
func mplsObject(stack ...MPLSEntry) []byte {
	var payload []byte
	for _, e := range stack {
		payload = append(payload, labelEntry(e)...)
	}
	return extObject(1, 1, payload)
}

// extStructure is an RFC 4884 extension structure: version 2 header with
// its checksum computed over the whole structure, then the objects.
func extStructure(objects ...[]byte) []byte {
	ext := []byte{0x20, 0, 0, 0}
	for _, o := range objects {
		ext = append(ext, o...)
	}
	setChecksum(ext[2:4], ext)
	return ext
}

// reChecksum recomputes the checksum of an extension structure after an
// edit, so the edit is the only defect.
func reChecksum(ext []byte) []byte {
	ext[2], ext[3] = 0, 0
	setChecksum(ext[2:4], ext)
	return ext
}

// Label stacks used in the cases.
var (
	// stack2 is a two-label stack: a transport label with TTL 1 over a
	// service label; every field differs from zero somewhere.
	stack2 = []MPLSEntry{
		{Label: 299792, TC: 0, S: false, TTL: 1},
		{Label: 16005, TC: 5, S: true, TTL: 254},
	}
	// stackMax has every bit set.
	stackMax = []MPLSEntry{{Label: 1<<20 - 1, TC: 7, S: true, TTL: 255}}
	// stackOne is the stack of mplsExtension.
	stackOne = []MPLSEntry{{Label: 16005, S: true, TTL: 1}}
)

// extended4 is an ICMP error from router4 whose original datagram field is
// quoted zero-padded to padded bytes, followed by ext. lengthWords is the
// RFC 4884 length attribute written to byte 5.
func extended4(t testing.TB, typ, code, lengthWords uint8, mtu uint16, quoted []byte, padded int, ext []byte) []byte {
	rest := [4]byte{0, lengthWords, byte(mtu >> 8), byte(mtu)}
	body := append(padTo(append([]byte(nil), quoted[:min(len(quoted), padded)]...), padded), ext...)
	return craftIPv4(router4, us4, hash.ProtoICMP, 254, 0x2222, nil, craftICMP(router4, us4, typ, code, rest, body))
}

// teSYN4 is a time exceeded quoting expiringSYN4, with the extension ext
// after padded bytes and the length attribute set to padded/4.
func teSYN4(t testing.TB, padded int, ext []byte) []byte {
	return extended4(t, 11, 0, uint8(padded/4), 0, mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4)), padded, ext)
}

// teSYN4Compat is teSYN4 from a router predating RFC 4884: length 0, the
// extension after exactly 128 bytes.
func teSYN4Compat(t testing.TB, ext []byte) []byte {
	return extended4(t, 11, 0, 0, 0, mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4)), 128, ext)
}

// extended6 is the ICMPv6 counterpart of extended4; rest is written as is,
// so callers put the length attribute (64-bit words) in rest[0].
func extended6(t testing.TB, typ, code uint8, rest [4]byte, padded int, ext []byte) []byte {
	body := append(padTo(quotedSYN6(t), padded), ext...)
	return craftICMP(router6, us6, typ, code, rest, body)
}

// wantTE4 is the Reply for teSYN4 and friends.
func wantTE4(mpls []MPLSEntry, malformed bool) Reply {
	return Reply{Kind: KindICMPError, From: router4, To: us4, TTL: 254, IPID: 0x2222, Tuple: tuple4,
		ICMPType: 11, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1, QuotedIPID: 0x4242,
		MPLS: mpls, ExtensionMalformed: malformed}
}

// wantSYN6Error is the Reply for an ICMPv6 error quoting quotedSYN6.
func wantSYN6Error(typ, code uint8, mpls []MPLSEntry, malformed bool) Reply {
	return Reply{Kind: KindICMPError, From: router6, To: us6, Tuple: tuple6,
		ICMPType: typ, ICMPCode: code, QuotedProto: hash.ProtoTCP, QuotedSeq: 0x01020304, QuotedTTL: 1,
		MPLS: mpls, ExtensionMalformed: malformed}
}

// extensionReplyCases are the RFC 4884 / RFC 4950 goldens. All of them are
// valid replies: a bad extension only sets ExtensionMalformed.
var extensionReplyCases = []replyCase{
	// Well-formed extensions.
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-mpls-2-labels.hex",
		comment: "RFC 4884 ICMP time exceeded, length 35 words: SYN quote padded to 140 bytes, then a 2-entry MPLS label stack (299792 TTL 1; 16005 TC 5 S TTL 254)",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4(t, 140, extStructure(mplsObject(stack2...))) },
		want:    wantTE4(stack2, false),
	},
	{
		file:    "valid-ipv4-frag-needed-rfc4884-mpls.hex",
		comment: "RFC 4884 ICMP fragmentation needed (3/4, next-hop MTU 1500 in bytes 6-7, length 32 words in byte 5) with an MPLS label stack",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return extended4(t, 3, 4, 32, 1500, mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4)), 128, mplsExtension())
		},
		want: func() Reply {
			r := wantTE4(stackOne, false)
			r.ICMPType, r.ICMPCode = 3, 4
			return r
		}(),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-zero-checksum.hex",
		comment: "RFC 4884 time exceeded whose extension checksum is 0 (not computed): accepted",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[2], ext[3] = 0, 0
			return teSYN4(t, 128, ext)
		},
		want: wantTE4(stack2, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-unknown-objects.hex",
		comment: "RFC 4884 time exceeded with an interface information object (class 2, RFC 5837), an MPLS object of unknown c-type 2, then an MPLS label stack: the first two are skipped",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ifInfo := extObject(2, 0x09, []byte{0, 0, 0, 7, 0, 0, 0x05, 0xdc}) // ifIndex 7, MTU 1500
			return teSYN4(t, 128, extStructure(ifInfo, extObject(1, 2, labelEntry(stackMax[0])), mplsObject(stack2...)))
		},
		want: wantTE4(stack2, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-two-mpls-objects.hex",
		comment: "RFC 4884 time exceeded with two MPLS label stack objects: their entries are concatenated in order",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return teSYN4(t, 128, extStructure(mplsObject(stack2...), mplsObject(stackMax...)))
		},
		want: wantTE4(append(append([]MPLSEntry(nil), stack2...), stackMax...), false),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-no-objects.hex",
		comment: "RFC 4884 time exceeded whose extension structure is a bare header without objects",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4(t, 128, extStructure()) },
		want:    wantTE4(nil, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-no-extension.hex",
		comment: "time exceeded with length attribute 32 words and a 128-byte original datagram field, but nothing after it",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4(t, 128, nil) },
		want:    wantTE4(nil, false),
	},
	{
		file:    "valid-icmp6-time-exceeded-rfc4884-mpls-2-labels.hex",
		comment: "RFC 4884 ICMPv6 time exceeded, length 17 64-bit words: SYN quote padded to 136 bytes, then a 2-entry MPLS label stack",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return extended6(t, 3, 0, [4]byte{136 / 8}, 136, extStructure(mplsObject(stack2...)))
		},
		want: wantSYN6Error(3, 0, stack2, false),
	},
	{
		file:    "valid-icmp6-no-route-rfc4884-mpls.hex",
		comment: "RFC 4884 ICMPv6 destination unreachable (1/0), length 16 64-bit words, MPLS label stack with every bit set",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return extended6(t, 1, 0, [4]byte{128 / 8}, 128, extStructure(mplsObject(stackMax...)))
		},
		want: wantSYN6Error(1, 0, stackMax, false),
	},

	// RFC 4884 section 5: length attribute 0.
	{
		file:    "valid-ipv4-time-exceeded-compat-mpls.hex",
		comment: "pre-RFC 4884 time exceeded: length attribute 0, MPLS extension with a valid checksum after exactly 128 bytes",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4Compat(t, extStructure(mplsObject(stack2...))) },
		want:    wantTE4(stack2, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-compat-zero-checksum.hex",
		comment: "length attribute 0 and a version 2 header at byte 128 with checksum 0: nothing proves it is an extension, ignored",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[2], ext[3] = 0, 0
			return teSYN4Compat(t, ext)
		},
		want: wantTE4(nil, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-compat-bad-checksum.hex",
		comment: "length attribute 0 and a version 2 header at byte 128 whose checksum fails: taken as quote, ignored",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[3] ^= 0x01
			return teSYN4Compat(t, ext)
		},
		want: wantTE4(nil, false),
	},
	{
		file:    "valid-ipv4-time-exceeded-compat-bad-object.hex",
		comment: "length attribute 0, checksummed version 2 header at byte 128, but an object length of 2: a real extension, malformed",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[4], ext[5] = 0, 2
			return teSYN4Compat(t, reChecksum(ext))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-port-unreachable-long-echo.hex",
		comment: "ICMP port unreachable, length attribute 0, quoting a 228-byte echo request: bytes past 128 are quote, not an extension",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			e := echo4
			e.Payload = bytes.Repeat([]byte("ecmpscan"), 25)
			quoted := craftIPv4(us4, target4, hash.ProtoICMP, 60, 0x3333, nil, mustBuild(t)(AppendEcho(nil, e)))
			return craftIPv4(target4, us4, hash.ProtoICMP, 61, 0, nil, craftICMP(target4, us4, 3, 3, [4]byte{}, quoted))
		},
		want: Reply{Kind: KindICMPError, From: target4, To: us4, TTL: 61, Tuple: echoTuple4,
			ICMPType: 3, ICMPCode: 3, EchoID: 0x1234, EchoSeq: 7, QuotedProto: hash.ProtoICMP, QuotedTTL: 60, QuotedIPID: 0x3333},
	},
	{
		file:    "valid-icmp6-time-exceeded-compat-mpls.hex",
		comment: "pre-RFC 4884 ICMPv6 time exceeded: length attribute 0, checksummed MPLS extension after exactly 128 bytes",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return extended6(t, 3, 0, [4]byte{}, 128, extStructure(mplsObject(stack2...)))
		},
		want: wantSYN6Error(3, 0, stack2, false),
	},
	{
		file:    "valid-icmp6-packet-too-big-trailing-extension.hex",
		comment: "ICMPv6 packet too big (MTU 1280) with a checksummed MPLS extension after 128 bytes: RFC 4884 does not extend this type, ignored",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return extended6(t, 2, 0, [4]byte{0, 0, 1280 >> 8, 1280 & 0xff}, 128, extStructure(mplsObject(stack2...)))
		},
		want: wantSYN6Error(2, 0, nil, false),
	},

	// Malformed extensions: the reply stands, the extension is dropped.
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-bad-version.hex",
		comment: "RFC 4884 time exceeded whose extension header has version 1: malformed extension",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[0] = 0x10
			return teSYN4(t, 128, reChecksum(ext))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-bad-checksum.hex",
		comment: "RFC 4884 time exceeded whose extension checksum is wrong: malformed extension",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[2] ^= 0x80
			return teSYN4(t, 128, ext)
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-short-header.hex",
		comment: "RFC 4884 time exceeded with only 2 bytes after the 128-byte datagram field: truncated extension header",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4(t, 128, []byte{0x20, 0}) },
		want:    wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-object-length-below-header.hex",
		comment: "RFC 4884 time exceeded whose MPLS object claims 2 bytes, less than its own header (checksum valid)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[4], ext[5] = 0, 2
			return teSYN4(t, 128, reChecksum(ext))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-object-length-zero.hex",
		comment: "RFC 4884 time exceeded whose only object claims length 0 (checksum valid)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[4], ext[5] = 0, 0
			return teSYN4(t, 128, reChecksum(ext))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-object-length-beyond-end.hex",
		comment: "RFC 4884 time exceeded whose MPLS object claims 256 bytes in a 12-byte structure (checksum valid)",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[4], ext[5] = 1, 0
			return teSYN4(t, 128, reChecksum(ext))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-mpls-partial-entry.hex",
		comment: "RFC 4884 time exceeded whose MPLS object carries 6 payload bytes, not a whole number of 4-byte entries",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return teSYN4(t, 128, extStructure(extObject(1, 1, append(labelEntry(stack2[0]), 0, 1))))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-trailing-bytes.hex",
		comment: "RFC 4884 time exceeded: a good MPLS object, then 2 stray bytes that cannot hold an object header; the whole extension is dropped",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return teSYN4(t, 128, extStructure(mplsObject(stack2...), []byte{0, 4}))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-length-below-128.hex",
		comment: "time exceeded with length attribute 7 words (28 bytes, the unpadded quote) followed by an MPLS extension: RFC 4884 requires 128, malformed",
		via:     viaIPv4,
		craft:   func(t testing.TB) []byte { return teSYN4(t, 28, extStructure(mplsObject(stack2...))) },
		want:    wantTE4(nil, true),
	},
	{
		file:    "valid-ipv4-time-exceeded-rfc4884-length-beyond-end.hex",
		comment: "time exceeded with length attribute 64 words (256 bytes) in a 144-byte message body: malformed extension",
		via:     viaIPv4,
		craft: func(t testing.TB) []byte {
			return extended4(t, 11, 0, 64, 0, mustBuild(t)(AppendIPv4TCPSYN(nil, expiringSYN4)), 128, extStructure(mplsObject(stack2...)))
		},
		want: wantTE4(nil, true),
	},
	{
		file:    "valid-icmp6-time-exceeded-rfc4884-bad-checksum.hex",
		comment: "RFC 4884 ICMPv6 time exceeded whose extension checksum is wrong: malformed extension",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			ext := extStructure(mplsObject(stack2...))
			ext[3] ^= 0x40
			return extended6(t, 3, 0, [4]byte{128 / 8}, 128, ext)
		},
		want: wantSYN6Error(3, 0, nil, true),
	},
	{
		file:    "valid-icmp6-time-exceeded-rfc4884-length-beyond-end.hex",
		comment: "ICMPv6 time exceeded with length attribute 18 64-bit words (144 bytes) in a 140-byte body: malformed extension",
		via:     viaICMP6(router6, us6),
		craft: func(t testing.TB) []byte {
			return extended6(t, 3, 0, [4]byte{144 / 8}, 128, extStructure(mplsObject(stackOne...)))
		},
		want: wantSYN6Error(3, 0, nil, true),
	},
}

// TestMPLSAgreesWithXNetICMP decodes every golden that should yield labels
// with golang.org/x/net/icmp as a second implementation.
func TestMPLSAgreesWithXNetICMP(t *testing.T) {
	for _, tc := range replyCases {
		if tc.wantErr != nil || len(tc.want.MPLS) == 0 {
			continue
		}
		t.Run(tc.file, func(t *testing.T) {
			b := readHex(t, tc.file)
			proto := 58
			if tc.via.name == "ipv4" {
				proto = 1
				b = b[int(b[0]&0x0f)*4:]
			}
			m, err := icmp.ParseMessage(proto, b)
			if err != nil {
				t.Fatal(err)
			}
			var exts []icmp.Extension
			switch body := m.Body.(type) {
			case *icmp.TimeExceeded:
				exts = body.Extensions
			case *icmp.DstUnreach:
				exts = body.Extensions
			default:
				t.Fatalf("x/net/icmp body %T", m.Body)
			}
			var got []MPLSEntry
			for _, ext := range exts {
				ls, ok := ext.(*icmp.MPLSLabelStack)
				if !ok || ls.Class != 1 || ls.Type != 1 {
					continue
				}
				for _, l := range ls.Labels {
					got = append(got, MPLSEntry{Label: uint32(l.Label), TC: uint8(l.TC), S: l.S, TTL: uint8(l.TTL)})
				}
			}
			if !reflect.DeepEqual(got, tc.want.MPLS) {
				t.Errorf("x/net/icmp decodes %+v, want %+v", got, tc.want.MPLS)
			}
		})
	}
}

// TestParseICMP4MatchesParseIPv4 runs every IPv4 ICMP golden through the
// ping-socket parser, which sees the same message without the IP header.
func TestParseICMP4MatchesParseIPv4(t *testing.T) {
	for _, tc := range replyCases {
		if tc.via.name != "ipv4" || tc.wantErr != nil || tc.want.Kind == KindTCP {
			continue
		}
		t.Run(tc.file, func(t *testing.T) {
			b := readHex(t, tc.file)
			ihl := int(b[0]&0x0f) * 4
			got, err := ParseICMP4(b[ihl:], tc.want.From, tc.want.To)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			want.TTL, want.IPID, want.Stamped = 0, 0, nil // no IPv4 header
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestParseICMPErrorNoAllocs pins the common path: an ICMP error without
// an extension, and a SYN-ACK, parse without allocating.
func TestParseICMPErrorNoAllocs(t *testing.T) {
	for _, tc := range []struct {
		file  string
		parse func([]byte) (Reply, error)
	}{
		{"valid-ipv4-synack.hex", ParseIPv4},
		{"valid-ipv4-time-exceeded-syn.hex", ParseIPv4},
		{"valid-ipv4-port-unreachable-long-echo.hex", ParseIPv4},
		{"valid-ipv4-time-exceeded-compat-bad-checksum.hex", ParseIPv4},
		{"valid-ipv4-time-exceeded-rfc4884-bad-checksum.hex", ParseIPv4},
		{"valid-icmp6-time-exceeded-syn.hex", func(b []byte) (Reply, error) { return ParseICMP6(b, router6, us6) }},
	} {
		b := readHex(t, tc.file)
		var r Reply
		var err error
		allocs := testing.AllocsPerRun(100, func() { r, err = tc.parse(b) })
		if err != nil || r.MPLS != nil {
			t.Fatalf("%s: reply %+v, error %v", tc.file, r, err)
		}
		if allocs != 0 {
			t.Errorf("%s: %v allocations per parse, want 0", tc.file, allocs)
		}
	}
}

// TestParseMPLSAllocsOnce checks that a label stack costs one allocation,
// sized exactly.
func TestParseMPLSAllocsOnce(t *testing.T) {
	b := readHex(t, "valid-ipv4-time-exceeded-rfc4884-two-mpls-objects.hex")
	var r Reply
	allocs := testing.AllocsPerRun(100, func() { r, _ = ParseIPv4(b) })
	if allocs != 1 {
		t.Errorf("%v allocations per parse, want 1", allocs)
	}
	if len(r.MPLS) != 3 || cap(r.MPLS) != 3 {
		t.Errorf("MPLS len %d cap %d, want 3 and 3", len(r.MPLS), cap(r.MPLS))
	}
}

// TestExtensionEveryTruncation cuts an extended message at every length:
// the parse either fails on the quote or succeeds with at most the full
// stack, and never panics.
func TestExtensionEveryTruncation(t *testing.T) {
	full := readHex(t, "valid-icmp6-time-exceeded-rfc4884-mpls-2-labels.hex")
	for n := range len(full) + 1 {
		r, err := ParseICMP6(full[:n], router6, us6)
		if err != nil {
			continue
		}
		if n < len(full) && r.MPLS != nil {
			t.Errorf("cut at %d: MPLS %+v from a truncated extension", n, r.MPLS)
		}
	}
}

func BenchmarkParseIPv4TimeExceededMPLS(b *testing.B) {
	pkt := readHex(b, "valid-ipv4-time-exceeded-rfc4884-mpls-2-labels.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := ParseIPv4(pkt); err != nil {
			b.Fatal(err)
		}
	}
}
