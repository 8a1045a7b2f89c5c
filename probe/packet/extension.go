package packet

import "encoding/binary"

// MPLSEntry is one MPLS label stack entry (RFC 3032 section 2.1) as an
// MPLS router reports it in an ICMP extension (RFC 4950): the label stack
// the probe carried when it arrived at the router, top of stack first.
type MPLSEntry struct {
	// Label is the 20-bit label value.
	Label uint32
	// TC is the 3-bit traffic class (formerly EXP, RFC 5462).
	TC uint8
	// S is the bottom-of-stack bit.
	S bool
	// TTL is the MPLS TTL the router saw on the entry.
	TTL uint8
}

const (
	// extOriginalMinLen is the minimal length of the original datagram
	// field when an RFC 4884 extension follows it; it is also where
	// routers predating RFC 4884 put the extension (RFC 4884 section 5).
	extOriginalMinLen = 128
	extVersion        = 2
	extHeaderLen      = 4
	extObjHeaderLen   = 4
	mplsEntryLen      = 4

	extClassMPLS = 1 // RFC 4950 MPLS label stack class
	extCTypeMPLS = 1 // incoming MPLS label stack
)

// setExtension looks for an RFC 4884 ICMP extension structure in body, the
// ICMP error message after its 8-byte header, and records its MPLS label
// stack objects (RFC 4950) in r.MPLS. origLen is the RFC 4884 length
// attribute converted to bytes: the length of the original datagram field,
// 0 when the sender did not set it.
//
// A broken extension never fails the parse, since the quoted header has
// already identified the probe: it is dropped as a whole (r.MPLS stays nil)
// and r.ExtensionMalformed is set. Without an extension nothing allocates.
func (r *Reply) setExtension(body []byte, origLen int) {
	var ext []byte
	switch {
	case origLen == 0:
		// RFC 4884 section 5: routers that predate the length attribute
		// append the extension after exactly 128 bytes of original
		// datagram. Those bytes may as well be a longer quote, so only a
		// version 2 header with a computed, valid checksum counts.
		if len(body) < extOriginalMinLen+extHeaderLen {
			return
		}
		ext = body[extOriginalMinLen:]
		if ext[0]>>4 != extVersion || binary.BigEndian.Uint16(ext[2:4]) == 0 || onesComplementSum(ext) != 0xffff {
			return
		}
	case origLen < extOriginalMinLen || origLen > len(body):
		// RFC 4884 section 4: a non-zero length covers a datagram padded
		// to at least 128 bytes, within the message.
		r.ExtensionMalformed = true
		return
	default:
		ext = body[origLen:]
		if len(ext) == 0 {
			return // a length attribute, but no extension after all
		}
		if len(ext) < extHeaderLen || ext[0]>>4 != extVersion {
			r.ExtensionMalformed = true
			return
		}
		// Checksum 0 means the sender did not compute one.
		if binary.BigEndian.Uint16(ext[2:4]) != 0 && onesComplementSum(ext) != 0xffff {
			r.ExtensionMalformed = true
			return
		}
	}
	objects := ext[extHeaderLen:]
	// Validate every object before keeping any label, so a bad structure
	// yields no labels at all, and size the slice exactly.
	n, ok := countMPLSEntries(objects)
	if !ok {
		r.ExtensionMalformed = true
		return
	}
	if n == 0 {
		return
	}
	r.MPLS = make([]MPLSEntry, 0, n)
	for len(objects) > 0 {
		objLen := int(binary.BigEndian.Uint16(objects[0:2]))
		if objects[2] == extClassMPLS && objects[3] == extCTypeMPLS {
			for e := objects[extObjHeaderLen:objLen]; len(e) >= mplsEntryLen; e = e[mplsEntryLen:] {
				v := binary.BigEndian.Uint32(e)
				r.MPLS = append(r.MPLS, MPLSEntry{
					Label: v >> 12,
					TC:    uint8(v>>9) & 0x7,
					S:     v&0x100 != 0,
					TTL:   uint8(v),
				})
			}
		}
		objects = objects[objLen:]
	}
}

// countMPLSEntries walks the objects of an extension structure and returns
// how many MPLS label stack entries they hold. It reports false when an
// object header or length is inconsistent: an object shorter than its
// header or running past the end, leftover bytes too short for an object
// header, or an MPLS label stack that is not a whole number of entries.
// Objects of other classes are skipped.
func countMPLSEntries(objects []byte) (int, bool) {
	n := 0
	for len(objects) > 0 {
		if len(objects) < extObjHeaderLen {
			return 0, false
		}
		objLen := int(binary.BigEndian.Uint16(objects[0:2]))
		if objLen < extObjHeaderLen || objLen > len(objects) {
			return 0, false
		}
		if objects[2] == extClassMPLS && objects[3] == extCTypeMPLS {
			payload := objLen - extObjHeaderLen
			if payload%mplsEntryLen != 0 {
				return 0, false
			}
			n += payload / mplsEntryLen
		}
		objects = objects[objLen:]
	}
	return n, true
}

// onesComplementSum is the RFC 1071 16-bit one's complement sum of b, an
// odd last byte padded with zero. Data carrying a correct checksum sums to
// 0xffff.
func onesComplementSum(b []byte) uint16 {
	var sum uint64 // cannot overflow below 2^48 bytes
	for ; len(b) >= 2; b = b[2:] {
		sum += uint64(b[0])<<8 | uint64(b[1])
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
