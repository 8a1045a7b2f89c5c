// Package hash holds the five-tuple that ECMP routers hash, and the bucketer
// that groups probe results by flow (and later by path or hash model).
package hash

import (
	"fmt"
	"net/netip"
	"strconv"
)

// IP protocol numbers used by the probers.
const (
	ProtoICMP   uint8 = 1
	ProtoTCP    uint8 = 6
	ProtoICMPv6 uint8 = 58
)

// FiveTuple is the flow identity a router hashes to pick an ECMP member.
// For ICMP echo, SrcPort carries the echo identifier and DstPort is zero:
// some routers hash the identifier in place of ports.
type FiveTuple struct {
	Src, Dst         netip.Addr
	Proto            uint8
	SrcPort, DstPort uint16
}

// Reverse is the tuple of a reply travelling back on the same flow.
func (t FiveTuple) Reverse() FiveTuple {
	return FiveTuple{Src: t.Dst, Dst: t.Src, Proto: t.Proto, SrcPort: t.DstPort, DstPort: t.SrcPort}
}

// Is6 reports whether the flow is IPv6.
func (t FiveTuple) Is6() bool { return t.Dst.Is6() && !t.Dst.Is4In6() }

func (t FiveTuple) String() string {
	name := strconv.Itoa(int(t.Proto))
	switch t.Proto {
	case ProtoTCP:
		name = "tcp"
	case ProtoICMP, ProtoICMPv6:
		name = "icmp"
	}
	return fmt.Sprintf("%s %s -> %s",
		name,
		netip.AddrPortFrom(t.Src, t.SrcPort),
		netip.AddrPortFrom(t.Dst, t.DstPort))
}
