package hash

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
)

var crcCheckInput = []byte("123456789")

func TestCRCCheckValues(t *testing.T) {
	if got := crc32.ChecksumIEEE(crcCheckInput); got != 0xCBF43926 {
		t.Errorf("CRC-32 check = %#x, want 0xcbf43926", got)
	}
	if got := crc32.Checksum(crcCheckInput, crc32.MakeTable(crc32.Castagnoli)); got != 0xE3069283 {
		t.Errorf("CRC-32C check = %#x, want 0xe3069283", got)
	}
	if got := CRC16CCITT(crcCheckInput); got != 0x29B1 {
		t.Errorf("CRC-16/CCITT-FALSE check = %#x, want 0x29b1", got)
	}
	if got := CRC16CCITT(nil); got != 0xFFFF {
		t.Errorf("CRC-16/CCITT-FALSE of nothing = %#x, want the init 0xffff", got)
	}
}

// The CRC models hash exactly the generic layout.
func TestCRCModelsHashGenericLayout(t *testing.T) {
	tu := FiveTuple{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), Proto: ProtoTCP, SrcPort: 40000, DstPort: 443}
	in := Encode(tu, LayoutGeneric)
	cases := map[string]uint32{
		"crc32":       crc32.ChecksumIEEE(in),
		"crc32c":      crc32.Checksum(in, crc32.MakeTable(crc32.Castagnoli)),
		"crc16-ccitt": uint32(CRC16CCITT(in)),
		"xor":         XORFold32(in),
		"xor16":       uint32(XORFold16(in)),
		"toeplitz":    ToeplitzHash(RSSKey[:], Encode(tu, LayoutRSSTCP)),
		"toeplitz-ip": ToeplitzHash(RSSKey[:], Encode(tu, LayoutRSSIP)),
	}
	for name, want := range cases {
		m, err := ModelByName(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Hash(tu); got != want {
			t.Errorf("%s = %#x, want %#x", name, got, want)
		}
		if got := m.Hash(tu); got>>m.Bits() != 0 && m.Bits() < 32 {
			t.Errorf("%s = %#x is wider than %d bits", name, got, m.Bits())
		}
	}
}

func TestXORFold(t *testing.T) {
	if got := XORFold32([]byte{1, 2, 3, 4, 0x10, 0x20, 0x30, 0x40, 0xff}); got != 0x01020304^0x10203040^0xff000000 {
		t.Errorf("XORFold32 = %#x", got)
	}
	if got := XORFold16([]byte{0x12, 0x34, 0x56, 0x78}); got != 0x1234^0x5678 {
		t.Errorf("XORFold16 = %#x", got)
	}
	if XORFold32(nil) != 0 {
		t.Error("XORFold32(nil) != 0")
	}
}

func TestEncodeLayouts(t *testing.T) {
	v4 := FiveTuple{Src: netip.MustParseAddr("1.2.3.4"), Dst: netip.MustParseAddr("5.6.7.8"), Proto: ProtoTCP, SrcPort: 0x1122, DstPort: 0x3344}
	v6 := FiveTuple{Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2"), Proto: ProtoTCP, SrcPort: 0x1122, DstPort: 0x3344}
	icmp := FiveTuple{Src: netip.MustParseAddr("1.2.3.4"), Dst: netip.MustParseAddr("5.6.7.8"), Proto: ProtoICMP, SrcPort: 0xbeef}
	mapped := v4
	mapped.Src = netip.AddrFrom16(v4.Src.As16())
	mapped.Dst = netip.AddrFrom16(v4.Dst.As16())
	a6 := "20010db8000000000000000000000001" + "20010db8000000000000000000000002"
	cases := []struct {
		name string
		t    FiveTuple
		l    Layout
		want string
	}{
		{"v4 rss-tcp", v4, LayoutRSSTCP, "01020304" + "05060708" + "1122" + "3344"},
		{"v4 rss-ip", v4, LayoutRSSIP, "01020304" + "05060708"},
		{"v4 generic", v4, LayoutGeneric, "01020304" + "05060708" + "06" + "1122" + "3344"},
		{"v6 rss-tcp", v6, LayoutRSSTCP, a6 + "1122" + "3344"},
		{"v6 rss-ip", v6, LayoutRSSIP, a6},
		{"v6 generic", v6, LayoutGeneric, a6 + "06" + "1122" + "3344"},
		{"icmp id as port", icmp, LayoutGeneric, "01020304" + "05060708" + "01" + "beef" + "0000"},
		{"4in6 is v4", mapped, LayoutRSSTCP, "01020304" + "05060708" + "1122" + "3344"},
		{"zero addrs", FiveTuple{Proto: ProtoTCP}, LayoutRSSIP, "0000000000000000"},
		{"unknown layout", v4, Layout(99), ""},
	}
	for _, c := range cases {
		got := hex.EncodeToString(Encode(c.t, c.l))
		if got != c.want {
			t.Errorf("%s: Encode = %s, want %s", c.name, got, c.want)
		}
		if n := c.l.MaxLen(); len(got)/2 > n {
			t.Errorf("%s: %d bytes, longer than MaxLen %d", c.name, len(got)/2, n)
		}
	}
	if got := AppendEncode([]byte{0xaa}, v4, LayoutRSSIP); !bytes.Equal(got, []byte{0xaa, 1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Errorf("AppendEncode = %x", got)
	}
	for _, l := range []Layout{LayoutRSSTCP, LayoutRSSIP, LayoutGeneric} {
		if got := len(Encode(v6, l)); got != l.MaxLen() {
			t.Errorf("%v: IPv6 is %d bytes, MaxLen says %d", l, got, l.MaxLen())
		}
	}
}

type rssVector struct {
	src, dst     netip.AddrPort
	ipOnly, tcp4 uint32
}

func readRSSVectors(t *testing.T) []rssVector {
	t.Helper()
	f, err := os.Open("testdata/valid-rss-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []rssVector
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 6 {
			t.Fatalf("line %d: %d fields, want 6", line, len(fields))
		}
		port := func(s string) uint16 {
			v, err := strconv.ParseUint(s, 10, 16)
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			return uint16(v)
		}
		hash := func(s string) uint32 {
			v, err := strconv.ParseUint(s, 0, 32)
			if err != nil {
				t.Fatalf("line %d: %v", line, err)
			}
			return uint32(v)
		}
		out = append(out, rssVector{
			src:    netip.AddrPortFrom(netip.MustParseAddr(fields[0]), port(fields[1])),
			dst:    netip.AddrPortFrom(netip.MustParseAddr(fields[2]), port(fields[3])),
			ipOnly: hash(fields[4]),
			tcp4:   hash(fields[5]),
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// The Microsoft RSS verification suite: 5 IPv4 and 3 IPv6 vectors, each
// with the IP-only and the TCP hash.
func TestToeplitzRSSVerificationSuite(t *testing.T) {
	vectors := readRSSVectors(t)
	if len(vectors) != 8 {
		t.Fatalf("%d vectors, want 8", len(vectors))
	}
	tcp, _ := ModelByName("toeplitz")
	ip, _ := ModelByName("toeplitz-ip")
	for _, v := range vectors {
		tu := FiveTuple{Src: v.src.Addr(), Dst: v.dst.Addr(), Proto: ProtoTCP, SrcPort: v.src.Port(), DstPort: v.dst.Port()}
		if got := tcp.Hash(tu); got != v.tcp4 {
			t.Errorf("%v: toeplitz = %#08x, want %#08x", tu, got, v.tcp4)
		}
		if got := ip.Hash(tu); got != v.ipOnly {
			t.Errorf("%v: toeplitz-ip = %#08x, want %#08x", tu, got, v.ipOnly)
		}
		if got := ToeplitzHash(RSSKey[:], Encode(tu, LayoutRSSTCP)); got != v.tcp4 {
			t.Errorf("%v: ToeplitzHash = %#08x, want %#08x", tu, got, v.tcp4)
		}
		// The table lists the destination first: swapping gives other hashes.
		if got := tcp.Hash(tu.Reverse()); got == v.tcp4 {
			t.Errorf("%v: reversed tuple hashes the same", tu)
		}
	}
}

// The table-driven Toeplitz agrees with the bit-by-bit one, for any key.
func TestToeplitzTableMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := make([]byte, 40)
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	m, err := NewToeplitz("t", key, LayoutRSSTCP)
	if err != nil {
		t.Fatal(err)
	}
	for range 500 {
		tu := modelRandomTuple(rng)
		if got, want := m.Hash(tu), ToeplitzHash(key, Encode(tu, LayoutRSSTCP)); got != want {
			t.Fatalf("%v: table %#x, reference %#x", tu, got, want)
		}
	}
	if _, err := NewToeplitz("short", key[:39], LayoutRSSTCP); err == nil {
		t.Error("a 39-byte key accepted for 36-byte input")
	}
	if _, err := NewToeplitz("generic", RSSKey[:], LayoutGeneric); err == nil {
		t.Error("the 40-byte key accepted for the 37-byte generic layout")
	}
	if _, err := NewToeplitz("bad", key, Layout(0)); err == nil {
		t.Error("unknown layout accepted")
	}
}

func TestByName(t *testing.T) {
	want := []string{"crc32", "crc32c", "crc16-ccitt", "xor", "xor16", "toeplitz", "toeplitz-ip"}
	ms := Models()
	if len(ms) != len(want) {
		t.Fatalf("%d models, want %d", len(ms), len(want))
	}
	for i, name := range want {
		if ms[i].Name() != name {
			t.Errorf("model %d is %s, want %s", i, ms[i].Name(), name)
		}
		m, err := ModelByName(strings.ToUpper(name))
		if err != nil || m.Name() != name {
			t.Errorf("ModelByName(%s) = %v, %v", name, m, err)
		}
		if b := m.Bits(); b != 16 && b != 32 {
			t.Errorf("%s: %d bits", name, b)
		}
	}
	if _, err := ModelByName("jhash"); err == nil {
		t.Error("ModelByName(jhash) did not fail")
	}
	for _, name := range []string{"modulo", "hash-threshold"} {
		if mp, err := MappingByName(name); err != nil || mp.Name() != name {
			t.Errorf("MappingByName(%s) = %v, %v", name, mp, err)
		}
	}
	if _, err := MappingByName("resilient"); err == nil {
		t.Error("MappingByName(resilient) did not fail")
	}
	Models()[0] = nil // a copy
	if Models()[0] == nil {
		t.Error("Models returns the package's slice")
	}
}

func TestMappingKnownValues(t *testing.T) {
	cases := []struct {
		mp         Mapping
		h          uint32
		bits, n    int
		want       int
		whyComment string
	}{
		{Modulo{}, 10, 32, 4, 2, "10 mod 4"},
		{Modulo{}, 0x1_0005, 16, 4, 1, "16-bit hash masked"},
		{HashThreshold{}, 0, 32, 4, 0, "first region"},
		{HashThreshold{}, 0x4000_0000, 32, 4, 1, "second quarter"},
		{HashThreshold{}, 0xffff_ffff, 32, 3, 2, "top of the space stays in range"},
		{HashThreshold{}, 0x8000, 16, 2, 1, "16-bit upper half"},
		{HashThreshold{}, 0x7fff, 16, 2, 0, "16-bit lower half"},
		{HashThreshold{}, 0xffff, 16, 7, 6, "16-bit top"},
		{HashThreshold{}, 0x5555_5555, 32, 3, 0, "2^32/3 boundary below"},
		{HashThreshold{}, 0x5555_5556, 32, 3, 1, "2^32/3 boundary above"},
	}
	for _, c := range cases {
		if got := c.mp.Bucket(c.h, c.bits, c.n); got != c.want {
			t.Errorf("%s(%#x, %d bits, %d) = %d, want %d (%s)", c.mp.Name(), c.h, c.bits, c.n, got, c.want, c.whyComment)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("zero next hops did not panic")
		}
	}()
	Modulo{}.Bucket(1, 32, 0)
}

// Every mapping returns 0..n-1 for any hash of any width.
func TestMappingsInRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, mp := range Mappings() {
		for range 20000 {
			bits := []int{16, 32}[rng.IntN(2)]
			n := 1 + rng.IntN(300)
			h := rng.Uint32()
			if bits == 16 {
				h &= 0xffff
			}
			if b := mp.Bucket(h, bits, n); b < 0 || b >= n {
				t.Fatalf("%s(%#x, %d bits, %d) = %d", mp.Name(), h, bits, n, b)
			}
		}
		for _, h := range []uint32{0, 1, 0xffff, 0x10000, 0xffff_ffff} {
			for _, bits := range []int{16, 32} {
				for _, n := range []int{1, 2, 3, 7, 64, 1000, 1 << 20} {
					if b := mp.Bucket(h, bits, n); b < 0 || b >= n {
						t.Errorf("%s(%#x, %d bits, %d) = %d", mp.Name(), h, bits, n, b)
					}
				}
			}
		}
	}
}

func modelRandomTuple(rng *rand.Rand) FiveTuple {
	var src, dst netip.Addr
	if rng.IntN(2) == 0 {
		src = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		dst = netip.AddrFrom4([4]byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
	} else {
		var a, b [16]byte
		for i := range a {
			a[i], b[i] = byte(rng.Uint32()), byte(rng.Uint32())
		}
		a[0], b[0] = 0x20, 0x20 // not 4in6
		src, dst = netip.AddrFrom16(a), netip.AddrFrom16(b)
	}
	return FiveTuple{Src: src, Dst: dst, Proto: ProtoTCP, SrcPort: uint16(rng.Uint32()), DstPort: uint16(rng.Uint32())}
}

// Every model spreads random tuples evenly over next hops under both
// mappings: a chi-square bound on deterministic input.
func TestMappingsDistributeEvenly(t *testing.T) {
	const tuples = 20000
	rng := rand.New(rand.NewPCG(5, 6))
	ts := make([]FiveTuple, tuples)
	for i := range ts {
		ts[i] = modelRandomTuple(rng)
	}
	// Chi-square critical values at p = 0.0001 for n-1 degrees of freedom.
	critical := map[int]float64{2: 15.1, 5: 23.5, 8: 33.1, 16: 48.7}
	for _, m := range Models() {
		for _, mp := range Mappings() {
			for n, crit := range critical {
				counts := make([]int, n)
				for _, tu := range ts {
					counts[BucketOf(m, mp, tu, n)]++
				}
				exp := float64(tuples) / float64(n)
				chi := 0.0
				for _, c := range counts {
					d := float64(c) - exp
					chi += d * d / exp
				}
				if chi > crit {
					t.Errorf("%s/%s over %d: chi-square %.1f > %.1f: %v", m.Name(), mp.Name(), n, chi, crit, counts)
				}
			}
		}
	}
}

// Source ports alone (the sweep's only variable) spread evenly too, for the
// models that hash them well at the top bits.
func TestHashThresholdSpreadsSourcePorts(t *testing.T) {
	base := FiveTuple{Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("198.51.100.7"), Proto: ProtoTCP, DstPort: 443}
	const n = 8
	for _, name := range []string{"crc32", "crc32c", "crc16-ccitt", "xor16", "toeplitz"} {
		m, _ := ModelByName(name)
		counts := make([]int, n)
		for sp := 30000; sp < 30000+8192; sp++ {
			tu := base
			tu.SrcPort = uint16(sp)
			counts[BucketOf(m, HashThreshold{}, tu, n)]++
		}
		exp, chi := 8192.0/n, 0.0
		for _, c := range counts {
			d := float64(c) - exp
			chi += d * d / exp
		}
		if chi > 33.1 {
			t.Errorf("%s: chi-square %.1f over sequential source ports: %v", name, chi, counts)
		}
	}
}

func BenchmarkToeplitz(b *testing.B) {
	m, _ := ModelByName("toeplitz")
	tu := FiveTuple{Src: netip.MustParseAddr("66.9.149.187"), Dst: netip.MustParseAddr("161.142.100.80"), Proto: ProtoTCP, DstPort: 1766}
	var sink uint32
	for i := 0; b.Loop(); i++ {
		tu.SrcPort = uint16(i)
		sink ^= m.Hash(tu)
	}
	_ = sink
}

func BenchmarkToeplitzIPv6(b *testing.B) {
	m, _ := ModelByName("toeplitz")
	tu := FiveTuple{Src: netip.MustParseAddr("3ffe:2501:200:1fff::7"), Dst: netip.MustParseAddr("3ffe:2501:200:3::1"), Proto: ProtoTCP, DstPort: 1766}
	var sink uint32
	for i := 0; b.Loop(); i++ {
		tu.SrcPort = uint16(i)
		sink ^= m.Hash(tu)
	}
	_ = sink
}
