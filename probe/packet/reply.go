package packet

import (
	"net/netip"
	"strconv"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Kind says what a parsed packet is. The zero Kind is never returned with a
// nil error, so a zero Reply is recognisably empty.
type Kind uint8

const (
	// KindTCP is a TCP segment from a target (SYN-ACK, RST, ...).
	KindTCP Kind = iota + 1
	// KindEchoReply is an ICMP or ICMPv6 echo reply.
	KindEchoReply
	// KindICMPError is an ICMP error quoting one of our probes.
	KindICMPError
)

func (k Kind) String() string {
	switch k {
	case KindTCP:
		return "tcp"
	case KindEchoReply:
		return "echo-reply"
	case KindICMPError:
		return "icmp-error"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// TCP flag bits as found in byte 13 of the TCP header.
const (
	FlagFIN uint8 = 0x01
	FlagSYN uint8 = 0x02
	FlagRST uint8 = 0x04
	FlagPSH uint8 = 0x08
	FlagACK uint8 = 0x10
	FlagURG uint8 = 0x20
	FlagECE uint8 = 0x40
	FlagCWR uint8 = 0x80
)

// Reply is what a parser extracted from one received packet. Fields that do
// not apply to the Kind are zero.
//
// Reply holds a slice (MPLS), so it is not comparable with ==; use
// reflect.DeepEqual or compare fields.
type Reply struct {
	Kind Kind

	// From and To are the outer addresses of the received packet: the
	// target (or the router sending an ICMP error) and us.
	From, To netip.Addr
	// TTL is the outer IPv4 TTL; 0 when unknown (IPv6 raw sockets do not
	// deliver the IPv6 header, so the hop limit must come from ancillary
	// data).
	TTL uint8
	// IPID is the outer IPv4 identification (0 for IPv6). Routers that
	// draw it from one counter for all their addresses give their
	// aliases away (report/alias.go).
	IPID uint16

	// Tuple identifies the flow.
	//   - KindTCP, KindEchoReply: the tuple as received, Src = target. It
	//     equals the probe's tuple.Reverse(); for echo that puts the
	//     identifier in DstPort.
	//   - KindICMPError: the quoted tuple, i.e. our original probe's tuple
	//     (Src = us), with the echo identifier in SrcPort for echo probes.
	Tuple hash.FiveTuple

	// Seq, Ack and Flags are the received TCP segment's (KindTCP).
	Seq, Ack uint32
	Flags    uint8

	// ICMPType and ICMPCode are set for KindEchoReply and KindICMPError.
	ICMPType, ICMPCode uint8
	// EchoID and EchoSeq come from the echo reply, or from the echo request
	// quoted inside an ICMP error.
	EchoID, EchoSeq uint16
	// Stamped are the prespecified addresses a timestamp option in the
	// outer IPv4 header says were stamped (AppendPrespecifiedTimestamp):
	// nil when it has none, or when its options cannot be read.
	Stamped []netip.Addr

	// QuotedProto is the protocol of the quoted packet (KindICMPError):
	// hash.ProtoTCP, hash.ProtoICMP or hash.ProtoICMPv6.
	QuotedProto uint8
	// QuotedSeq is the quoted TCP sequence number, which identifies the
	// probe when ports are reused.
	QuotedSeq uint32
	// QuotedTTL is the TTL or hop limit left in the quoted header when the
	// router saw it.
	QuotedTTL uint8
	// QuotedIPID is the quoted IPv4 identification (0 for IPv6).
	QuotedIPID uint16

	// MPLS is the MPLS label stack (RFC 4950), top entry first, that an
	// MPLS router reported in an RFC 4884 extension of an ICMP time
	// exceeded, destination unreachable or ICMPv4 parameter problem
	// (KindICMPError): the labels the probe carried when it expired or was
	// dropped. Entries of several MPLS label stack objects are concatenated
	// in message order. Nil when there is no such object, which is the
	// common case and costs no allocation.
	//
	// The extension is taken from the offset the RFC 4884 length attribute
	// gives, or, when the attribute is 0, from offset 128 of the original
	// datagram if a version 2 header with a valid, non-zero checksum is
	// there (RFC 4884 section 5, routers predating RFC 4884).
	MPLS []MPLSEntry
	// ExtensionMalformed reports that the message announced an RFC 4884
	// extension structure (non-zero length attribute, or a checksummed
	// header at offset 128) that is inconsistent: length attribute below
	// 128 bytes or past the end of the message, wrong version, bad
	// checksum, or an object length that does not fit. The whole extension
	// is then ignored (MPLS is nil); the Reply is otherwise valid.
	ExtensionMalformed bool
}
