package packet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// addHexSeeds seeds f with every testdata/*.hex file. All files go to all
// targets: a valid packet for one parser is an interesting invalid one for
// another.
func addHexSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.hex"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatal("no testdata/*.hex seeds")
	}
	for _, file := range files {
		f.Add(readHex(f, filepath.Base(file)))
	}
}

func FuzzParseIPv4(f *testing.F) {
	addHexSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseIPv4(b)
		if !checkParseResult(t, r, err) {
			return
		}
		// Success implies a consistent outer header.
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if b[0]>>4 != 4 || ihl < 20 || total < ihl || total > len(b) {
			t.Fatalf("accepted inconsistent IPv4 header % x", b[:min(len(b), 20)])
		}
		checkTransportLen(t, r, b[ihl:total], 20)
		checkExtension(t, r, b[ihl:total], false)
		if !r.From.Is4() || !r.To.Is4() || r.TTL != b[8] {
			t.Fatalf("outer fields %v -> %v TTL %d do not match header", r.From, r.To, r.TTL)
		}
		if r.Kind != KindICMPError && (!r.Tuple.Src.Is4() || !r.Tuple.Dst.Is4()) {
			t.Fatalf("IPv4 reply with tuple %v", r.Tuple)
		}
	})
}

func FuzzParseTCP6(f *testing.F) {
	addHexSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseTCP6(b, target6, us6)
		if !checkParseResult(t, r, err) {
			return
		}
		if r.Kind != KindTCP || r.From != target6 || r.To != us6 {
			t.Fatalf("ParseTCP6 returned %+v", r)
		}
		checkTransportLen(t, r, b, 40)
	})
}

func FuzzParseICMP4(f *testing.F) {
	addHexSeeds(f)
	// Also the ICMP messages inside the IPv4 files, as a ping socket
	// delivers them, so the ICMP error and extension paths start covered.
	files, err := filepath.Glob(filepath.Join("testdata", "*ipv4*.hex"))
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		b := readHex(f, filepath.Base(file))
		if len(b) >= 20 && b[0]>>4 == 4 && b[9] == hash.ProtoICMP {
			if ihl := int(b[0]&0x0f) * 4; ihl <= len(b) {
				f.Add(b[ihl:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseICMP4(b, target4, us4)
		if !checkParseResult(t, r, err) {
			return
		}
		if r.Kind == KindTCP || r.From != target4 || r.To != us4 {
			t.Fatalf("ParseICMP4 returned %+v", r)
		}
		checkTransportLen(t, r, b, 20)
		checkExtension(t, r, b, false)
	})
}

func FuzzParseICMP6(f *testing.F) {
	addHexSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseICMP6(b, router6, us6)
		if !checkParseResult(t, r, err) {
			return
		}
		if r.Kind == KindTCP || r.From != router6 || r.To != us6 {
			t.Fatalf("ParseICMP6 returned %+v", r)
		}
		checkTransportLen(t, r, b, 40)
		checkExtension(t, r, b, true)
	})
}

// checkParseResult checks what holds for every parser and reports whether
// the parse succeeded.
func checkParseResult(t *testing.T, r Reply, err error) bool {
	t.Helper()
	if err != nil {
		if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("error outside the parser sentinels: %v", err)
		}
		if !reflect.ValueOf(r).IsZero() {
			t.Fatalf("error %v came with non-zero Reply %+v", err, r)
		}
		return false
	}
	if !r.From.IsValid() || !r.To.IsValid() || !r.Tuple.Src.IsValid() || !r.Tuple.Dst.IsValid() {
		t.Fatalf("invalid address in %+v", r)
	}
	switch r.Kind {
	case KindTCP:
		if r.Tuple.Proto != hash.ProtoTCP || r.Tuple.Src != r.From || r.Tuple.Dst != r.To {
			t.Fatalf("TCP reply with tuple %v from %v to %v", r.Tuple, r.From, r.To)
		}
	case KindEchoReply:
		if r.Tuple.Src != r.From || r.Tuple.Dst != r.To || r.Tuple.SrcPort != 0 || r.Tuple.DstPort != r.EchoID {
			t.Fatalf("echo reply with tuple %v, id %#x", r.Tuple, r.EchoID)
		}
	case KindICMPError:
		switch r.QuotedProto {
		case hash.ProtoTCP, hash.ProtoICMP, hash.ProtoICMPv6:
		default:
			t.Fatalf("ICMP error quoting protocol %d", r.QuotedProto)
		}
		if r.Tuple.Proto != r.QuotedProto {
			t.Fatalf("quoted tuple %v, quoted protocol %d", r.Tuple, r.QuotedProto)
		}
	default:
		t.Fatalf("success with invalid kind %v", r.Kind)
	}
	return true
}

// checkTransportLen checks that the transport bytes a parser accepted are
// long enough for the Kind it reported; ipHeaderLen is the minimum quoted
// IP header for ICMP errors.
func checkTransportLen(t *testing.T, r Reply, transport []byte, ipHeaderLen int) {
	t.Helper()
	need := map[Kind]int{
		KindTCP:       20,
		KindEchoReply: 8,
		KindICMPError: 8 + ipHeaderLen + 8,
	}[r.Kind]
	if r.Kind == KindTCP && len(transport) >= 13 {
		need = max(need, int(transport[12]>>4)*4)
	}
	if len(transport) < need {
		t.Fatalf("%v accepted from %d transport bytes, need %d", r.Kind, len(transport), need)
	}
}

// checkExtension checks the RFC 4884 / RFC 4950 fields against msg, the
// ICMP message the reply was parsed from.
func checkExtension(t *testing.T, r Reply, msg []byte, v6 bool) {
	t.Helper()
	extensible := r.Kind == KindICMPError
	if extensible {
		switch typ := msg[0]; {
		case v6:
			extensible = typ == 1 || typ == 3
		default:
			extensible = typ == 3 || typ == 11 || typ == 12
		}
	}
	if !extensible && (r.MPLS != nil || r.ExtensionMalformed) {
		t.Fatalf("%v type %d with MPLS %+v, malformed %v", r.Kind, r.ICMPType, r.MPLS, r.ExtensionMalformed)
	}
	if r.MPLS == nil {
		return
	}
	if len(r.MPLS) == 0 || r.ExtensionMalformed {
		t.Fatalf("MPLS %#v with malformed %v", r.MPLS, r.ExtensionMalformed)
	}
	// ICMP header, the 128-byte minimal original datagram, extension
	// header, one object header, then the entries.
	if need := 8 + 128 + 4 + 4 + 4*len(r.MPLS); len(msg) < need {
		t.Fatalf("%d MPLS entries from a %d-byte message, need %d bytes", len(r.MPLS), len(msg), need)
	}
	ext := msg[8+128:]
	for _, e := range r.MPLS {
		if e.Label >= 1<<20 || e.TC >= 8 {
			t.Fatalf("MPLS entry %+v out of range", e)
		}
		v := e.Label<<12 | uint32(e.TC)<<9 | uint32(e.TTL)
		if e.S {
			v |= 1 << 8
		}
		if !bytes.Contains(ext, binary.BigEndian.AppendUint32(nil, v)) {
			t.Fatalf("MPLS entry %+v not found in the extension area % x", e, ext)
		}
	}
}
