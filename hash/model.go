package hash

// Hash models of real gear. A router picks an ECMP member by hashing the
// bytes of a flow's five-tuple and mapping the hash to one of N next hops.
// When the hash is unseeded and its input is known, the ports that fail
// under a bad member can be predicted; Model and Mapping describe the two
// halves, and FitModels (fit.go) searches them for one that explains a
// sweep.
//
// Byte layouts (Layout) of a FiveTuple, all fields in network byte order:
//
//	LayoutRSSTCP  src addr | dst addr | src port (2) | dst port (2)
//	LayoutRSSIP   src addr | dst addr
//	LayoutGeneric src addr | dst addr | proto (1) | src port (2) | dst port (2)
//
// LayoutRSSTCP and LayoutRSSIP are the Toeplitz inputs of the Microsoft RSS
// specification ("Verifying the RSS Hash Calculation"): 12 and 8 bytes for
// IPv4, 36 and 32 bytes for IPv6. LayoutGeneric is the input of the CRC and
// XOR models: 13 bytes for IPv4, 37 for IPv6.
//
// Each address is written in its own width: 4 bytes for IPv4 and for an
// IPv4-mapped IPv6 address (a router sees an IPv4 packet), 16 bytes for
// IPv6. The zero netip.Addr is written as zeros, 16 of them when the tuple
// is IPv6 (FiveTuple.Is6) and 4 otherwise. Encoding never panics.
//
// ICMP echo: the identifier sits in SrcPort and DstPort is 0, and both are
// hashed as ports (routers that hash the identifier do it in place of the
// ports). Real NICs compute RSS over the addresses only for non-TCP/UDP
// packets; that is the toeplitz-ip model, which the caller picks.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"net/netip"
	"slices"
	"strings"
)

// Layout is a canonical byte encoding of a FiveTuple; see the comment at
// the top of model.go for the byte order of each.
type Layout uint8

const (
	// LayoutRSSTCP is the Microsoft RSS input with ports ("TCP/IPv4" and
	// "TCP/IPv6" hash types): src addr, dst addr, src port, dst port.
	LayoutRSSTCP Layout = iota + 1
	// LayoutRSSIP is the Microsoft RSS input over the addresses only
	// ("IPv4" and "IPv6" hash types): src addr, dst addr.
	LayoutRSSIP
	// LayoutGeneric is src addr, dst addr, protocol, src port, dst port.
	LayoutGeneric
)

// MaxEncodedLen is the longest encoding of any layout (IPv6 LayoutGeneric).
const MaxEncodedLen = 16 + 16 + 1 + 2 + 2

func (l Layout) String() string {
	switch l {
	case LayoutRSSTCP:
		return "rss-tcp"
	case LayoutRSSIP:
		return "rss-ip"
	case LayoutGeneric:
		return "generic"
	}
	return fmt.Sprintf("Layout(%d)", uint8(l))
}

// MaxLen is the longest encoding in layout l (an IPv6 tuple).
func (l Layout) MaxLen() int {
	switch l {
	case LayoutRSSTCP:
		return 36
	case LayoutRSSIP:
		return 32
	case LayoutGeneric:
		return 37
	}
	return 0
}

// Encode is the bytes of t in layout l. An unknown layout encodes to nil.
func Encode(t FiveTuple, l Layout) []byte {
	return AppendEncode(make([]byte, 0, l.MaxLen()), t, l)
}

// AppendEncode appends the bytes of t in layout l to b.
func AppendEncode(b []byte, t FiveTuple, l Layout) []byte {
	six := t.Is6()
	switch l {
	case LayoutRSSTCP:
		b = appendAddr(b, t.Src, six)
		b = appendAddr(b, t.Dst, six)
		b = binary.BigEndian.AppendUint16(b, t.SrcPort)
		b = binary.BigEndian.AppendUint16(b, t.DstPort)
	case LayoutRSSIP:
		b = appendAddr(b, t.Src, six)
		b = appendAddr(b, t.Dst, six)
	case LayoutGeneric:
		b = appendAddr(b, t.Src, six)
		b = appendAddr(b, t.Dst, six)
		b = append(b, t.Proto)
		b = binary.BigEndian.AppendUint16(b, t.SrcPort)
		b = binary.BigEndian.AppendUint16(b, t.DstPort)
	}
	return b
}

func appendAddr(b []byte, a netip.Addr, six bool) []byte {
	switch {
	case a.Is4() || a.Is4In6():
		v := a.Unmap().As4()
		return append(b, v[:]...)
	case a.Is6():
		v := a.As16()
		return append(b, v[:]...)
	case six:
		return append(b, make([]byte, 16)...)
	default:
		return append(b, 0, 0, 0, 0)
	}
}

// Model is an unseeded hash function over a FiveTuple, as some gear uses to
// pick an ECMP member. Hash returns a value of Bits() bits (16 or 32), in
// the low bits of the uint32.
type Model interface {
	Name() string
	Bits() int
	Hash(t FiveTuple) uint32
}

// crc32Model is CRC-32 (IEEE, as in Ethernet; or Castagnoli) over
// LayoutGeneric, in the usual reflected form with init and final XOR
// 0xFFFFFFFF (check values 0xCBF43926 and 0xE3069283 over "123456789").
type crc32Model struct {
	name string
	tab  *crc32.Table
}

func (m *crc32Model) Name() string { return m.name }
func (m *crc32Model) Bits() int    { return 32 }
func (m *crc32Model) Hash(t FiveTuple) uint32 {
	return crc32.Checksum(Encode(t, LayoutGeneric), m.tab)
}

// CRC16CCITT is CRC-16/CCITT-FALSE: polynomial 0x1021, init 0xFFFF, no
// reflection, no final XOR (check value 0x29B1 over "123456789"). It is the
// CRC16 that switch ASICs commonly offer as an ECMP hash.
func CRC16CCITT(data []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, b := range data {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^b]
	}
	return crc
}

var crc16Table = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

type crc16Model struct{}

func (crc16Model) Name() string { return "crc16-ccitt" }
func (crc16Model) Bits() int    { return 16 }
func (crc16Model) Hash(t FiveTuple) uint32 {
	var buf [MaxEncodedLen]byte
	return uint32(CRC16CCITT(AppendEncode(buf[:0], t, LayoutGeneric)))
}

// XORFold32 is the XOR of the big-endian 32-bit words of data, the last
// word zero-padded on the right.
func XORFold32(data []byte) uint32 {
	var h uint32
	for len(data) >= 4 {
		h ^= binary.BigEndian.Uint32(data)
		data = data[4:]
	}
	var last [4]byte
	copy(last[:], data)
	return h ^ binary.BigEndian.Uint32(last[:])
}

// XORFold16 folds XORFold32 to 16 bits: high half XOR low half.
func XORFold16(data []byte) uint16 {
	h := XORFold32(data)
	return uint16(h>>16) ^ uint16(h)
}

// xorModel is the XOR fold of LayoutGeneric, 32 or 16 bits wide. Note the
// layout is not word-aligned: for IPv4 the words are src, dst,
// proto|sport|dport-high and dport-low|0|0|0, so the source port lands in
// bits 8-23 of the 32-bit fold and hash-threshold over a few next hops
// (which reads the top bits) ignores it. The 16-bit fold mixes it into
// every bit.
type xorModel struct{ bits int }

func (m xorModel) Name() string {
	if m.bits == 16 {
		return "xor16"
	}
	return "xor"
}
func (m xorModel) Bits() int { return m.bits }
func (m xorModel) Hash(t FiveTuple) uint32 {
	var buf [MaxEncodedLen]byte
	b := AppendEncode(buf[:0], t, LayoutGeneric)
	if m.bits == 16 {
		return uint32(XORFold16(b))
	}
	return XORFold32(b)
}

// RSSKey is the default 40-byte Toeplitz key of the Microsoft RSS
// specification, used by the published verification suite and as the
// default key of many NIC drivers.
var RSSKey = [40]byte{
	0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
	0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
	0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
	0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
	0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
}

// ToeplitzHash is the Toeplitz hash of the RSS specification, bit by bit:
// for every set bit i of input (most significant bit of input[0] first),
// XOR in the 32 bits of key starting at bit i. Key bits past the end of key
// are zero. It is the reference for the table-driven models.
func ToeplitzHash(key, input []byte) uint32 {
	var h uint32
	for i, b := range input {
		for j := range 8 {
			if b&(0x80>>j) != 0 {
				h ^= keyWindow(key, i*8+j)
			}
		}
	}
	return h
}

// keyWindow is the 32 bits of key starting at bit pos (zero past the end).
func keyWindow(key []byte, pos int) uint32 {
	var w uint64
	for k := range 5 {
		w <<= 8
		if i := pos/8 + k; i < len(key) {
			w |= uint64(key[i])
		}
	}
	return uint32(w >> (8 - pos%8))
}

// toeplitzTable holds, for each input byte position and byte value, the
// XOR of the key windows of the set bits.
type toeplitzTable [][256]uint32

func newToeplitzTable(key []byte, n int) toeplitzTable {
	tab := make(toeplitzTable, n)
	for p := range n {
		var w [8]uint32
		for j := range 8 {
			w[j] = keyWindow(key, p*8+j)
		}
		for v := 1; v < 256; v++ {
			var h uint32
			for j := range 8 {
				if v&(0x80>>j) != 0 {
					h ^= w[j]
				}
			}
			tab[p][v] = h
		}
	}
	return tab
}

type toeplitzModel struct {
	name   string
	layout Layout
	tab    toeplitzTable
}

// NewToeplitz is a Toeplitz model with the given key over layout. The key
// must be at least 4 bytes longer than the layout's longest input (40 bytes
// covers LayoutRSSTCP over IPv6, as in the RSS specification).
func NewToeplitz(name string, key []byte, layout Layout) (Model, error) {
	n := layout.MaxLen()
	if n == 0 {
		return nil, fmt.Errorf("toeplitz %s: unknown layout %v", name, layout)
	}
	if len(key) < n+4 {
		return nil, fmt.Errorf("toeplitz %s: key of %d bytes is too short for %v input (need %d)", name, len(key), layout, n+4)
	}
	return &toeplitzModel{name: name, layout: layout, tab: newToeplitzTable(key, n)}, nil
}

func (m *toeplitzModel) Name() string { return m.name }
func (m *toeplitzModel) Bits() int    { return 32 }
func (m *toeplitzModel) Hash(t FiveTuple) uint32 {
	var buf [MaxEncodedLen]byte
	var h uint32
	for i, b := range AppendEncode(buf[:0], t, m.layout) {
		h ^= m.tab[i][b]
	}
	return h
}

func mustToeplitz(name string, layout Layout) Model {
	m, err := NewToeplitz(name, RSSKey[:], layout)
	if err != nil {
		panic(err)
	}
	return m
}

var builtinModels = []Model{
	&crc32Model{name: "crc32", tab: crc32.IEEETable},
	&crc32Model{name: "crc32c", tab: crc32.MakeTable(crc32.Castagnoli)},
	crc16Model{},
	xorModel{bits: 32},
	xorModel{bits: 16},
	mustToeplitz("toeplitz", LayoutRSSTCP),
	mustToeplitz("toeplitz-ip", LayoutRSSIP),
}

// Models lists every built-in model:
//
//	crc32        CRC-32 (IEEE) over LayoutGeneric, 32 bits
//	crc32c       CRC-32C (Castagnoli) over LayoutGeneric, 32 bits
//	crc16-ccitt  CRC-16/CCITT-FALSE over LayoutGeneric, 16 bits
//	xor          XOR fold of LayoutGeneric to 32 bits
//	xor16        XOR fold of LayoutGeneric to 16 bits
//	toeplitz     Toeplitz, RSSKey, over LayoutRSSTCP (RSS "TCP" hash), 32 bits
//	toeplitz-ip  Toeplitz, RSSKey, over LayoutRSSIP (RSS "IP" hash), 32 bits
//
// toeplitz-ip ignores ports, so it can never explain a port sweep; it is
// there for completeness and for ICMP on NICs.
func Models() []Model { return slices.Clone(builtinModels) }

// ModelByName is the built-in model with that name (case-insensitive).
func ModelByName(name string) (Model, error) {
	for _, m := range builtinModels {
		if strings.EqualFold(m.Name(), name) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("unknown hash model %q (known: %s)", name, strings.Join(modelNames(builtinModels), ", "))
}

// Mapping turns a hash of the given width (Model.Bits) into one of n next
// hops, 0..n-1. n must be positive.
type Mapping interface {
	Name() string
	Bucket(h uint32, bits, n int) int
}

// Modulo is h mod n.
type Modulo struct{}

func (Modulo) Name() string { return "modulo" }
func (Modulo) Bucket(h uint32, bits, n int) int {
	checkBuckets(n)
	return int(widthMask(h, bits) % uint32(n))
}

// HashThreshold is RFC 2992 hash-threshold: the hash space is cut into n
// equal regions and the region holding h is the next hop,
// h*n >> bits (for 32 bits, region = h / (2^32/n) without the overflow of
// the last region when n does not divide 2^32). It reads the top bits of
// the hash, so 16-bit hashes must be mapped with bits = 16.
type HashThreshold struct{}

func (HashThreshold) Name() string { return "hash-threshold" }
func (HashThreshold) Bucket(h uint32, bits, n int) int {
	checkBuckets(n)
	if bits <= 0 || bits > 32 {
		bits = 32
	}
	return int(uint64(widthMask(h, bits)) * uint64(n) >> bits)
}

func checkBuckets(n int) {
	if n < 1 || uint64(n) > 1<<32 {
		panic(fmt.Sprintf("hash: %d next hops: need 1 to 2^32", n))
	}
}

func widthMask(h uint32, bits int) uint32 {
	if bits > 0 && bits < 32 {
		return h & (1<<bits - 1)
	}
	return h
}

var builtinMappings = []Mapping{Modulo{}, HashThreshold{}}

// Mappings lists every built-in mapping: modulo and hash-threshold.
func Mappings() []Mapping { return slices.Clone(builtinMappings) }

// MappingByName is the built-in mapping with that name (case-insensitive).
func MappingByName(name string) (Mapping, error) {
	for _, m := range builtinMappings {
		if strings.EqualFold(m.Name(), name) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("unknown hash mapping %q (known: %s)", name, strings.Join(modelNames(builtinMappings), ", "))
}

// BucketOf is the next hop, 0..n-1, that model m and mapping mp pick for t
// among n.
func BucketOf(m Model, mp Mapping, t FiveTuple, n int) int {
	return mp.Bucket(m.Hash(t), m.Bits(), n)
}

func modelNames[T interface{ Name() string }](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.Name()
	}
	return out
}
