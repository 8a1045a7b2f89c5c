package responder

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// ErrNotSYN means a received packet is not a probe SYN (or is cut short).
var ErrNotSYN = errors.New("not a TCP SYN")

// syn is what the responder records of a probe SYN.
type syn struct {
	src          netip.Addr
	sport, dport uint16
	seq          uint32
	ttl          uint8
}

// parseSYN reads a packet from a raw TCP socket: on IPv4 the IP header and
// the TCP segment, on IPv6 the segment alone, its source and hop limit
// from the socket (from, hop). Only a SYN without ACK passes.
func parseSYN(b []byte, v6 bool, from netip.Addr, hop uint8) (syn, error) {
	s := syn{src: from, ttl: hop}
	if !v6 {
		if len(b) < 20 || b[0]>>4 != 4 {
			return s, fmt.Errorf("%w: short or not IPv4", ErrNotSYN)
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl {
			return s, fmt.Errorf("%w: bad IPv4 header length", ErrNotSYN)
		}
		if b[9] != 6 {
			return s, fmt.Errorf("%w: protocol %d", ErrNotSYN, b[9])
		}
		s.ttl = b[8]
		s.src = netip.AddrFrom4([4]byte(b[12:16]))
		b = b[ihl:]
	}
	if len(b) < 20 {
		return s, fmt.Errorf("%w: short TCP header", ErrNotSYN)
	}
	if off := int(b[12]>>4) * 4; off < 20 || len(b) < off {
		return s, fmt.Errorf("%w: bad TCP data offset", ErrNotSYN)
	}
	const synFlag, ackFlag = 0x02, 0x10
	if b[13]&(synFlag|ackFlag) != synFlag {
		return s, fmt.Errorf("%w: flags %#x", ErrNotSYN, b[13])
	}
	s.sport = binary.BigEndian.Uint16(b[0:2])
	s.dport = binary.BigEndian.Uint16(b[2:4])
	s.seq = binary.BigEndian.Uint32(b[4:8])
	if !s.src.IsValid() {
		return s, fmt.Errorf("%w: no source address", ErrNotSYN)
	}
	return s, nil
}
