package packet

import "errors"

// Parser errors. Callers reading a raw socket see every packet for the
// protocol, so ErrUnsupported is routine; the other two indicate damage.
var (
	// ErrTruncated means a length field or the fixed layout needs more bytes
	// than the buffer holds.
	ErrTruncated = errors.New("packet: truncated")
	// ErrMalformed means a header field is impossible: wrong IP version,
	// IHL below 5, TCP data offset below 5, total length below header length.
	ErrMalformed = errors.New("packet: malformed")
	// ErrUnsupported means a well-formed packet that is not a reply to any
	// probe this package builds (other protocols, ICMP types, fragments).
	ErrUnsupported = errors.New("packet: unsupported")
)

// Builder errors.
var (
	// ErrInvalidAddr means a zero, unspecified or wrong-family address.
	ErrInvalidAddr = errors.New("packet: invalid address")
	// ErrFamilyMismatch means source and destination are not both IPv4 or
	// both IPv6, or not the family the function builds.
	ErrFamilyMismatch = errors.New("packet: address family mismatch")
	// ErrNotTCP means a SYN was requested for a tuple whose Proto is not TCP.
	ErrNotTCP = errors.New("packet: tuple protocol is not TCP")
	// ErrZeroPort means a TCP port of zero, which hosts and middleboxes drop.
	ErrZeroPort = errors.New("packet: zero TCP port")
	// ErrPayloadTooLarge means an echo payload that cannot fit in one
	// IP packet.
	ErrPayloadTooLarge = errors.New("packet: payload too large")
)
