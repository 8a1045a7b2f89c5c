//go:build linux

package responder

import (
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/internal/rawsock"
)

// rawCapture is a raw TCP socket that sees the probe SYNs of one family.
type rawCapture struct {
	*rawsock.Conn
	v6 bool
}

var _ Capture = rawCapture{}

func (c rawCapture) V6() bool { return c.v6 }

// OpenCapture opens the raw TCP socket of a family, filtered to SYNs. It
// needs CAP_NET_RAW (rawsock.ErrPermission otherwise).
func OpenCapture(v6 bool) (Capture, error) {
	any := netip.IPv4Unspecified()
	if v6 {
		any = netip.IPv6Unspecified()
	}
	c, err := rawsock.Open(any, unix.SOCK_RAW, unix.IPPROTO_TCP)
	if err != nil {
		return nil, err
	}
	if err := c.AttachFilter(synFilter(v6)); err != nil {
		c.Close()
		return nil, err
	}
	return rawCapture{Conn: c, v6: v6}, nil
}
