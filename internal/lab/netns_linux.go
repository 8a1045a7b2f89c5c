//go:build linux

package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// InNamespace runs fn on a thread that has joined the named network
// namespace (/run/netns/ns), then moves the thread back. Sockets created by
// fn stay in ns for their whole life, wherever they are used later.
// Goroutines that fn starts do not run in ns. If the thread cannot be moved
// back, it stays locked, so the runtime ends it rather than reuse it.
func InNamespace(ns string, fn func() error) error {
	if ns == "" || strings.ContainsAny(ns, "/\x00") || ns == "." || ns == ".." {
		return fmt.Errorf("bad namespace name %q", ns)
	}
	target, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		return fmt.Errorf("namespace %s: %w", ns, err)
	}
	defer target.Close()

	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("current namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", ns, err)
	}
	restored := false
	defer func() {
		if restored {
			runtime.UnlockOSThread()
		}
		// else: leave the thread locked; it dies with this goroutine.
	}()
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return errors.Join(fnErr, fmt.Errorf("leave namespace %s: %w", ns, err))
	}
	restored = true
	return fnErr
}

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

// connReq is one connect of connectBatch.
type connReq struct{ src, dst netip.AddrPort }

// connectBatch makes many TCP connects at once: every socket is created and
// bound (SO_REUSEADDR, fixed source port) inside ns in one go, then all
// connect without blocking and one poll loop waits up to timeout for them.
// Each socket is then closed with SO_LINGER 0 (a RST, no TIME_WAIT).
// Requests must not repeat a source and destination pair.
func connectBatch(ctx context.Context, ns string, reqs []connReq, timeout time.Duration) ([]dialResult, error) {
	res := make([]dialResult, len(reqs))
	fds := make([]int, len(reqs))
	for i := range fds {
		fds[i] = -1
	}
	defer func() {
		for _, fd := range fds {
			if fd >= 0 {
				unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
				unix.Close(fd)
			}
		}
	}()
	err := InNamespace(ns, func() error {
		for i, r := range reqs {
			family := unix.AF_INET
			if r.src.Addr().Is6() {
				family = unix.AF_INET6
			}
			fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("socket: %w", err)
			}
			fds[i] = fd
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				return err
			}
			if err := unix.Bind(fd, sockaddr(r.src)); err != nil {
				return fmt.Errorf("bind %s: %w", r.src, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect from %s: %w", ns, err)
	}
	pending := map[int]int{} // fd -> request
	for i, r := range reqs {
		err := unix.Connect(fds[i], sockaddr(r.dst))
		switch {
		case err == nil:
			res[i] = dialConnected
		case errors.Is(err, unix.EINPROGRESS):
			pending[fds[i]] = i
		case errors.Is(err, unix.ECONNREFUSED):
			res[i] = dialRefused
		case errors.Is(err, unix.EADDRINUSE), errors.Is(err, unix.EADDRNOTAVAIL):
			return nil, fmt.Errorf("connect %s -> %s: %w", r.src, r.dst, err)
		}
	}
	deadline := time.Now().Add(timeout)
	pfds := make([]unix.PollFd, 0, len(pending))
	for len(pending) > 0 {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pfds = pfds[:0]
		for fd := range pending {
			pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT})
		}
		wait := min(left, 100*time.Millisecond)
		n, err := unix.Poll(pfds, int(wait/time.Millisecond)+1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("poll: %w", err)
		}
		if n == 0 {
			continue
		}
		for _, p := range pfds {
			if p.Revents == 0 {
				continue
			}
			fd := int(p.Fd)
			i := pending[fd]
			delete(pending, fd)
			soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			switch {
			case err != nil:
				return nil, fmt.Errorf("SO_ERROR: %w", err)
			case soerr == 0:
				res[i] = dialConnected
			case unix.Errno(soerr) == unix.ECONNREFUSED:
				res[i] = dialRefused
			case unix.Errno(soerr) == unix.ECONNRESET:
				// Handshake done, and the server already reset it.
				res[i] = dialConnected
			}
		}
	}
	return res, nil
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
}
