//go:build linux

package route

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

var seqs atomic.Uint32

// Lookup asks the kernel's routing tables which first hop q leaves by. It
// waits at most until ctx ends or a second passes.
func Lookup(ctx context.Context, q Query) (Route, error) {
	seq := seqs.Add(1)
	req, err := Request(q, seq)
	if err != nil {
		return Route{}, err
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return Route{}, fmt.Errorf("route lookup: %w", err)
	}
	defer unix.Close(fd)
	wait := time.Second
	if d, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(d))
	}
	if wait <= 0 {
		return Route{}, context.DeadlineExceeded
	}
	tv := unix.NsecToTimeval(wait.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return Route{}, fmt.Errorf("route lookup: %w", err)
	}
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Route{}, fmt.Errorf("route lookup: %w", err)
	}
	buf := make([]byte, 8192)
	// A socket of its own hears only its answer; a few reads are plenty.
	for range 4 {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return Route{}, fmt.Errorf("route lookup: %w", err)
		}
		r, err := ParseReply(buf[:n], seq)
		if !errors.Is(err, ErrNoReply) {
			// Asked here, in the namespace the socket was opened in.
			return r.Zoned(func(i int) (string, error) {
				ifc, err := net.InterfaceByIndex(i)
				if err != nil {
					return "", err
				}
				return ifc.Name, nil
			}), err
		}
	}
	return Route{}, ErrNoReply
}
