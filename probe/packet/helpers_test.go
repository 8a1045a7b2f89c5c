package packet

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

var update = flag.Bool("update", false, "rewrite testdata/*.hex from the test cases")

// Addresses shared by the tests: we probe from us to target; routers on the
// way send ICMP errors.
var (
	us4     = netip.MustParseAddr("198.18.1.1")
	target4 = netip.MustParseAddr("198.18.2.2")
	router4 = netip.MustParseAddr("198.18.0.1")
	us6     = netip.MustParseAddr("2001:db8:1::2")
	target6 = netip.MustParseAddr("2001:db8:2::2")
	router6 = netip.MustParseAddr("2001:db8:ff::1")
)

// Hex files hold '#' comment lines followed by whitespace-separated hex.

func readHex(t testing.TB, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeHex(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func decodeHex(raw []byte) ([]byte, error) {
	var digits strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	return hex.DecodeString(digits.String())
}

func encodeHex(comment string, b []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimSpace(comment), "\n") {
		fmt.Fprintf(&out, "# %s\n", line)
	}
	for len(b) > 0 {
		n := min(16, len(b))
		for i, c := range b[:n] {
			if i > 0 {
				out.WriteByte(' ')
			}
			fmt.Fprintf(&out, "%02x", c)
		}
		out.WriteByte('\n')
		b = b[n:]
	}
	return out.Bytes()
}

// checkGolden compares got with testdata/name, or rewrites the file with
// -update.
func checkGolden(t *testing.T, name, comment string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, encodeHex(comment, got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readHex(t, name)
	if !bytes.Equal(got, want) {
		t.Errorf("%s: bytes differ from golden\n got: % x\nwant: % x", name, got, want)
	}
}

// The rest are packet-crafting helpers written independently of the
// package code, so builder output is checked against a second
// implementation and parsers see packets they did not produce.

// onesSum is the 16-bit one's complement sum (RFC 1071) of the chunks
// concatenated. A packet whose checksum field is correct sums to 0xffff.
func onesSum(chunks ...[]byte) uint16 {
	var all []byte
	for _, c := range chunks {
		all = append(all, c...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint32
	for i := 0; i < len(all); i += 2 {
		sum += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}

// pseudoHeader is the IPv4 (RFC 793) or IPv6 (RFC 8200 section 8.1)
// pseudo-header for upper-layer checksums.
func pseudoHeader(src, dst netip.Addr, proto uint8, length int) []byte {
	if src.Is4() {
		s, d := src.As4(), dst.As4()
		p := append(s[:], d[:]...)
		return append(p, 0, proto, byte(length>>8), byte(length))
	}
	s, d := src.As16(), dst.As16()
	p := append(s[:], d[:]...)
	p = binary.BigEndian.AppendUint32(p, uint32(length))
	return append(p, 0, 0, 0, proto)
}

// setChecksum stores the checksum of the chunks in field, which must be
// zero beforehand and lie inside one of the chunks.
func setChecksum(field []byte, chunks ...[]byte) {
	binary.BigEndian.PutUint16(field, ^onesSum(chunks...))
}

func craftIPv4(src, dst netip.Addr, proto, ttl uint8, id uint16, options, payload []byte) []byte {
	hl := 20 + len(options)
	b := make([]byte, hl, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(hl+len(payload)))
	binary.BigEndian.PutUint16(b[4:], id)
	b[8] = ttl
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], options)
	setChecksum(b[10:12], b)
	return append(b, payload...)
}

func craftIPv6Header(src, dst netip.Addr, next, hopLimit uint8, payloadLen int) []byte {
	b := make([]byte, 40)
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(payloadLen))
	b[6] = next
	b[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return b
}

// craftTCP builds a TCP segment from src to dst with the given options
// (already padded to 4 bytes) and a correct checksum.
func craftTCP(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags uint8, options []byte) []byte {
	b := make([]byte, 20+len(options))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], seq)
	binary.BigEndian.PutUint32(b[8:], ack)
	b[12] = byte(len(b)/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], 29200)
	copy(b[20:], options)
	setChecksum(b[16:18], pseudoHeader(src, dst, hash.ProtoTCP, len(b)), b)
	return b
}

// craftICMP builds an ICMP (src/dst IPv4: no pseudo-header) or ICMPv6
// message: type, code, the 4 type-specific bytes, then body.
func craftICMP(src, dst netip.Addr, typ, code uint8, rest [4]byte, body []byte) []byte {
	b := append([]byte{typ, code, 0, 0, rest[0], rest[1], rest[2], rest[3]}, body...)
	if src.Is4() {
		setChecksum(b[2:4], b)
	} else {
		setChecksum(b[2:4], pseudoHeader(src, dst, hash.ProtoICMPv6, len(b)), b)
	}
	return b
}

func idSeq(id, seq uint16) [4]byte {
	return [4]byte{byte(id >> 8), byte(id), byte(seq >> 8), byte(seq)}
}

// mustBuild(t)(AppendX(...)) fails the test if the builder errs.
func mustBuild(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}
