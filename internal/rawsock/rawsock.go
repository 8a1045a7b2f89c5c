// Package rawsock is the thin platform layer under the probers: raw and
// ping sockets opened with explicit options, kernel receive timestamps and
// drop counters, and receives that take part in Go's netpoller, so a
// context or Close unblocks them at once. Linux has it all; elsewhere Open
// says ErrUnsupported and ecmpscan runs in connect mode.
package rawsock

import (
	"errors"
	"net/netip"
	"time"
)

var (
	// ErrPermission means the process lacks CAP_NET_RAW.
	ErrPermission = errors.New("operation needs root or CAP_NET_RAW")
	// ErrUnsupported means this system has no such sockets for us.
	ErrUnsupported = errors.New("raw and ping sockets are implemented for Linux only")
)

// Packet is one received datagram.
type Packet struct {
	Data []byte // valid until the next Receive
	From netip.Addr
	At   time.Time // kernel receive time, or our clock when absent
	// HopLimit is the IPv6 hop limit the packet arrived with; 0 if unknown.
	HopLimit uint8
	// Dropped is the socket's count of packets dropped for want of buffer
	// space since it was opened (SO_RXQ_OVFL); 0 if unknown.
	Dropped uint32
}
