package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

var (
	tuple4 = hash.FiveTuple{Src: us4, Dst: target4, Proto: hash.ProtoTCP, SrcPort: 30000, DstPort: 3306}
	tuple6 = hash.FiveTuple{Src: us6, Dst: target6, Proto: hash.ProtoTCP, SrcPort: 30000, DstPort: 3306}
	syn4   = SYN{Tuple: tuple4, Seq: 0x01020304}
	syn6   = SYN{Tuple: tuple6, Seq: 0x01020304}
	// ipSYN4 sets the fields only the IP_HDRINCL builder emits.
	ipSYN4 = SYN{Tuple: tuple4, Seq: 0x01020304, TTL: 5, IPID: 0xbeef}
	// synAck4 is a reverse probe: the server's answer on the reversed tuple.
	reverseSYNACK4 = SYN{Tuple: tuple4.Reverse(), Seq: 0x0a0b0c0d, SynAck: true, Ack: 0x01020305}
	echo4          = Echo{Src: us4, Dst: target4, ID: 0x1234, Seq: 7, Payload: []byte("ecmpscan")}
	echo6          = Echo{Src: us6, Dst: target6, ID: 0x1234, Seq: 7, Payload: []byte("ecmpscan")}
)

// builderGoldens are the builder outputs pinned in testdata.
var builderGoldens = []struct {
	file, comment string
	build         func() ([]byte, error)
	// check verifies the bytes against an independent reading of the RFCs.
	check func(t *testing.T, b []byte)
}{
	{
		file:    "valid-syn4-tcp.hex",
		comment: "AppendTCPSYN: TCP SYN 198.18.1.1:30000 -> 198.18.2.2:3306 seq 0x01020304, MSS 1460",
		build:   func() ([]byte, error) { return AppendTCPSYN(nil, syn4) },
		check: func(t *testing.T, b []byte) {
			checkSYNHeader(t, b, syn4, 1460)
			checkSum(t, "TCP", pseudoHeader(us4, target4, hash.ProtoTCP, len(b)), b)
		},
	},
	{
		file:    "valid-syn6-tcp.hex",
		comment: "AppendTCPSYN: TCP SYN [2001:db8:1::2]:30000 -> [2001:db8:2::2]:3306 seq 0x01020304, MSS 1440",
		build:   func() ([]byte, error) { return AppendTCPSYN(nil, syn6) },
		check: func(t *testing.T, b []byte) {
			checkSYNHeader(t, b, syn6, 1440)
			checkSum(t, "TCP", pseudoHeader(us6, target6, hash.ProtoTCP, len(b)), b)
		},
	},
	{
		file:    "valid-synack4-tcp.hex",
		comment: "AppendTCPSYN with SynAck: TCP SYN-ACK 198.18.2.2:3306 -> 198.18.1.1:30000 seq 0x0a0b0c0d ack 0x01020305, MSS 1460",
		build:   func() ([]byte, error) { return AppendTCPSYN(nil, reverseSYNACK4) },
		check: func(t *testing.T, b []byte) {
			checkSYNHeader(t, b, reverseSYNACK4, 1460)
			checkSum(t, "TCP", pseudoHeader(target4, us4, hash.ProtoTCP, len(b)), b)
		},
	},
	{
		file:    "valid-syn4-ipv4.hex",
		comment: "AppendIPv4TCPSYN: IPv4 (TTL 5, ID 0xbeef, DF clear) + TCP SYN 198.18.1.1:30000 -> 198.18.2.2:3306 seq 0x01020304",
		build:   func() ([]byte, error) { return AppendIPv4TCPSYN(nil, ipSYN4) },
		check: func(t *testing.T, b []byte) {
			if len(b) != 44 {
				t.Fatalf("len = %d, want 20 + 24", len(b))
			}
			ip := b[:20]
			want := []byte{0x45, 0, 0, 44, 0xbe, 0xef, 0, 0, 5, hash.ProtoTCP}
			if !bytes.Equal(ip[:10], want) {
				t.Errorf("IPv4 header % x, want prefix % x", ip[:10], want)
			}
			if got := netip.AddrFrom4([4]byte(ip[12:16])); got != us4 {
				t.Errorf("source %v", got)
			}
			if got := netip.AddrFrom4([4]byte(ip[16:20])); got != target4 {
				t.Errorf("destination %v", got)
			}
			checkSum(t, "IPv4 header", ip)
			checkSYNHeader(t, b[20:], ipSYN4, 1460)
			checkSum(t, "TCP", pseudoHeader(us4, target4, hash.ProtoTCP, 24), b[20:])
		},
	},
	{
		file:    "valid-echo4-request.hex",
		comment: "AppendEcho: ICMP echo request id 0x1234 seq 7 payload \"ecmpscan\"",
		build:   func() ([]byte, error) { return AppendEcho(nil, echo4) },
		check: func(t *testing.T, b []byte) {
			checkEchoHeader(t, b, 8, echo4)
			checkSum(t, "ICMP", b)
		},
	},
	{
		file:    "valid-echo6-request.hex",
		comment: "AppendEcho: ICMPv6 echo request 2001:db8:1::2 -> 2001:db8:2::2 id 0x1234 seq 7 payload \"ecmpscan\"",
		build:   func() ([]byte, error) { return AppendEcho(nil, echo6) },
		check: func(t *testing.T, b []byte) {
			checkEchoHeader(t, b, 128, echo6)
			checkSum(t, "ICMPv6", pseudoHeader(us6, target6, hash.ProtoICMPv6, len(b)), b)
		},
	},
}

func TestBuilderGolden(t *testing.T) {
	for _, tc := range builderGoldens {
		t.Run(tc.file, func(t *testing.T) {
			b, err := tc.build()
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, b)
			checkGolden(t, tc.file, tc.comment, b)
		})
	}
}

func checkSum(t *testing.T, what string, chunks ...[]byte) {
	t.Helper()
	if s := onesSum(chunks...); s != 0xffff {
		t.Errorf("%s checksum does not verify: one's complement sum %#04x, want 0xffff", what, s)
	}
}

func checkSYNHeader(t *testing.T, b []byte, s SYN, mss uint16) {
	t.Helper()
	if len(b) != 24 {
		t.Fatalf("TCP length %d, want 24 (20 + MSS option)", len(b))
	}
	ack, flags := uint32(0), uint32(FlagSYN)
	if s.SynAck {
		ack, flags = s.Ack, uint32(FlagSYN|FlagACK)
	}
	checks := []struct {
		field     string
		got, want uint32
	}{
		{"source port", uint32(binary.BigEndian.Uint16(b[0:])), uint32(s.Tuple.SrcPort)},
		{"destination port", uint32(binary.BigEndian.Uint16(b[2:])), uint32(s.Tuple.DstPort)},
		{"seq", binary.BigEndian.Uint32(b[4:]), s.Seq},
		{"ack", binary.BigEndian.Uint32(b[8:]), ack},
		{"data offset", uint32(b[12] >> 4), 6},
		{"flags", uint32(b[13]), flags},
		{"window", uint32(binary.BigEndian.Uint16(b[14:])), 65535},
		{"urgent", uint32(binary.BigEndian.Uint16(b[18:])), 0},
		{"option kind", uint32(b[20]), 2},
		{"option length", uint32(b[21]), 4},
		{"MSS", uint32(binary.BigEndian.Uint16(b[22:])), uint32(mss)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.field, c.got, c.want)
		}
	}
}

func checkEchoHeader(t *testing.T, b []byte, typ uint8, e Echo) {
	t.Helper()
	if len(b) != 8+len(e.Payload) {
		t.Fatalf("length %d, want %d", len(b), 8+len(e.Payload))
	}
	if b[0] != typ || b[1] != 0 {
		t.Errorf("type/code %d/%d, want %d/0", b[0], b[1], typ)
	}
	if id, seq := binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]); id != e.ID || seq != e.Seq {
		t.Errorf("id/seq %#x/%d, want %#x/%d", id, seq, e.ID, e.Seq)
	}
	if !bytes.Equal(b[8:], e.Payload) {
		t.Errorf("payload %q, want %q", b[8:], e.Payload)
	}
}

func TestSYNFieldsAndDefaults(t *testing.T) {
	s := syn4
	s.Window = 1024
	b := mustBuild(t)(AppendTCPSYN(nil, s))
	if w := binary.BigEndian.Uint16(b[14:]); w != 1024 {
		t.Errorf("window %d, want 1024", w)
	}
	checkSum(t, "TCP", pseudoHeader(us4, target4, hash.ProtoTCP, len(b)), b)

	b = mustBuild(t)(AppendIPv4TCPSYN(nil, syn4))
	if b[8] != 64 {
		t.Errorf("default TTL %d, want 64", b[8])
	}
	if flags := binary.BigEndian.Uint16(b[6:]); flags != 0 {
		t.Errorf("flags/fragment %#x, want 0 (DF clear)", flags)
	}
}

func TestBuildersAppend(t *testing.T) {
	prefix := []byte("prefix")
	for name, build := range map[string]func([]byte) ([]byte, error){
		"AppendTCPSYN":     func(d []byte) ([]byte, error) { return AppendTCPSYN(d, syn6) },
		"AppendIPv4TCPSYN": func(d []byte) ([]byte, error) { return AppendIPv4TCPSYN(d, syn4) },
		"AppendEcho":       func(d []byte) ([]byte, error) { return AppendEcho(d, echo4) },
	} {
		alone := mustBuild(t)(build(nil))
		got := mustBuild(t)(build(bytes.Clone(prefix)))
		if !bytes.Equal(got, append(bytes.Clone(prefix), alone...)) {
			t.Errorf("%s did not append after existing bytes: % x", name, got)
		}
	}
}

func TestMappedAddressesBuildIPv4(t *testing.T) {
	s := syn4
	s.Tuple.Src = netip.AddrFrom16(us4.As16())
	got := mustBuild(t)(AppendTCPSYN(nil, s))
	want := mustBuild(t)(AppendTCPSYN(nil, syn4))
	if !bytes.Equal(got, want) {
		t.Errorf("IPv4-mapped source built % x, want % x", got, want)
	}
}

func TestBuilderErrors(t *testing.T) {
	withTuple := func(edit func(*hash.FiveTuple)) SYN {
		s := syn4
		edit(&s.Tuple)
		return s
	}
	synCases := []struct {
		name string
		syn  SYN
		want error
	}{
		{"zero source", withTuple(func(t *hash.FiveTuple) { t.Src = netip.Addr{} }), ErrInvalidAddr},
		{"zero destination", withTuple(func(t *hash.FiveTuple) { t.Dst = netip.Addr{} }), ErrInvalidAddr},
		{"unspecified source", withTuple(func(t *hash.FiveTuple) { t.Src = netip.IPv4Unspecified() }), ErrInvalidAddr},
		{"unspecified destination", withTuple(func(t *hash.FiveTuple) { t.Dst = netip.IPv6Unspecified() }), ErrInvalidAddr},
		{"mixed families", withTuple(func(t *hash.FiveTuple) { t.Dst = target6 }), ErrFamilyMismatch},
		{"ICMP tuple", withTuple(func(t *hash.FiveTuple) { t.Proto = hash.ProtoICMP }), ErrNotTCP},
		{"zero source port", withTuple(func(t *hash.FiveTuple) { t.SrcPort = 0 }), ErrZeroPort},
		{"zero destination port", withTuple(func(t *hash.FiveTuple) { t.DstPort = 0 }), ErrZeroPort},
	}
	for _, tc := range synCases {
		for name, build := range map[string]func([]byte, SYN) ([]byte, error){
			"AppendTCPSYN": AppendTCPSYN, "AppendIPv4TCPSYN": AppendIPv4TCPSYN,
		} {
			if b, err := build([]byte("x"), tc.syn); !errors.Is(err, tc.want) || string(b) != "x" {
				t.Errorf("%s(%s) = % x, %v; want dst unchanged and %v", name, tc.name, b, err, tc.want)
			}
		}
	}
	if _, err := AppendIPv4TCPSYN(nil, syn6); !errors.Is(err, ErrFamilyMismatch) {
		t.Errorf("AppendIPv4TCPSYN(IPv6) error %v, want %v", err, ErrFamilyMismatch)
	}

	echoCases := []struct {
		name string
		echo Echo
		want error
	}{
		{"zero source", Echo{Dst: target4}, ErrInvalidAddr},
		{"zero destination", Echo{Src: us4}, ErrInvalidAddr},
		{"mixed families", Echo{Src: us6, Dst: target4}, ErrFamilyMismatch},
		{"v4 payload too large", Echo{Src: us4, Dst: target4, Payload: make([]byte, 65535-20-8+1)}, ErrPayloadTooLarge},
		{"v6 payload too large", Echo{Src: us6, Dst: target6, Payload: make([]byte, 65535-8+1)}, ErrPayloadTooLarge},
	}
	for _, tc := range echoCases {
		if _, err := AppendEcho(nil, tc.echo); !errors.Is(err, tc.want) {
			t.Errorf("AppendEcho(%s) error %v, want %v", tc.name, err, tc.want)
		}
	}
	// The largest payloads still build.
	for _, e := range []Echo{
		{Src: us4, Dst: target4, Payload: make([]byte, 65535-20-8)},
		{Src: us6, Dst: target6, Payload: make([]byte, 65535-8)},
	} {
		if _, err := AppendEcho(nil, e); err != nil {
			t.Errorf("AppendEcho(%d-byte payload to %v): %v", len(e.Payload), e.Dst, err)
		}
	}
}
