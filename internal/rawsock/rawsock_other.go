//go:build !linux

package rawsock

import (
	"context"
	"net/netip"

	"golang.org/x/net/bpf"
)

// Conn is a socket this system cannot open: every call says ErrUnsupported.
type Conn struct{}

// Open says ErrUnsupported: raw and ping sockets are implemented for Linux.
func Open(netip.Addr, int, int) (*Conn, error) { return nil, ErrUnsupported }

func (*Conn) Bind(netip.Addr, uint16) error                   { return ErrUnsupported }
func (*Conn) SetICMPv6Filter(...uint8) error                  { return ErrUnsupported }
func (*Conn) AttachFilter([]bpf.Instruction) error            { return ErrUnsupported }
func (*Conn) SetTTL(int) error                                { return ErrUnsupported }
func (*Conn) SetIPOptions([]byte) error                       { return ErrUnsupported }
func (*Conn) SendTo([]byte, netip.Addr, uint16) error         { return ErrUnsupported }
func (*Conn) Receive(context.Context, []byte) (Packet, error) { return Packet{}, ErrUnsupported }
func (*Conn) Close() error                                    { return nil }
