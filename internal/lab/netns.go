package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cmdTimeout bounds every external command.
const cmdTimeout = 60 * time.Second

// run runs a command with stdin, bounded by cmdTimeout, and returns its
// standard output and standard error.
func run(ctx context.Context, stdin string, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

// ipBatch runs `ip [-n ns] -batch -` with lines, stopping at the first error.
func ipBatch(ctx context.Context, ns string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, _, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	return err
}

// ipBatch6 is ipBatch for `ip -6` (e.g. IPv6 policy rules, whose family
// the lines cannot say).
func ipBatch6(ctx context.Context, ns string, lines []string) error {
	if len(lines) == 0 {
		return nil
	}
	_, _, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", "-6", "-n", ns, "-batch", "-")
	return err
}

// ipBatchForce runs `ip [-n ns] -force -batch -` and returns stdout and the
// set of failed line numbers (1-based), as reported on stderr.
func ipBatchForce(ctx context.Context, ns string, lines []string) (string, map[int]string, error) {
	args := []string{"-force", "-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	out, errs, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	failed := map[int]string{}
	var last string
	for _, l := range strings.Split(errs, "\n") {
		var n int
		if _, e := fmt.Sscanf(l, "Command failed -:%d", &n); e == nil {
			failed[n] = last
			continue
		}
		if strings.TrimSpace(l) != "" {
			last = strings.TrimSpace(l)
		}
	}
	if err != nil && len(failed) == 0 {
		return "", nil, err
	}
	return out, failed, nil
}

// netnsNames lists all named network namespaces.
func netnsNames(ctx context.Context) ([]string, error) {
	out, _, err := run(ctx, "", "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// writeSysctls writes sysctls (keys in dotted form) inside ns, through
// /proc/sys as seen by a thread in ns. Keys in optional may be missing.
func writeSysctls(ns string, kv [][2]string, optional map[string]bool) error {
	return InNamespace(ns, func() error {
		for _, e := range kv {
			path := "/proc/sys/" + strings.ReplaceAll(e[0], ".", "/")
			if err := os.WriteFile(path, []byte(e[1]), 0o644); err != nil {
				if optional[e[0]] {
					continue
				}
				return fmt.Errorf("%s: sysctl %s=%s: %w", ns, e[0], e[1], err)
			}
		}
		return nil
	})
}

// Listen opens one dual-stack (IPv4 and IPv6) TCP listener per port inside
// ns, with SO_REUSEADDR. The backlog is the kernel's somaxconn cap.
func Listen(ns string, ports []uint16) ([]net.Listener, error) {
	var ls []net.Listener
	err := InNamespace(ns, func() error {
		lc := net.ListenConfig{Control: reuseAddr}
		for _, p := range ports {
			l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf(":%d", p))
			if err != nil {
				return err
			}
			ls = append(ls, l)
		}
		return nil
	})
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		return nil, fmt.Errorf("listen in %s: %w", ns, err)
	}
	return ls, nil
}

// Serve accepts connections on every listener concurrently and resets each
// at once (SO_LINGER 0, so neither side keeps TIME_WAIT), until ctx is done;
// then it closes the listeners and returns nil.
func Serve(ctx context.Context, ls []net.Listener) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(ls))
	stop := make(chan struct{})
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					select {
					case <-stop:
						return
					default:
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() ||
						errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
						errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) {
						time.Sleep(5 * time.Millisecond)
						continue
					}
					errc <- err
					return
				}
				if tc, ok := c.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				c.Close()
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	close(stop)
	for _, l := range ls {
		l.Close()
	}
	wg.Wait()
	return err
}

// dialResult is the outcome of one connect.
type dialResult uint8

const (
	dialFailed    dialResult = iota // timeout, unreachable...
	dialConnected                   // handshake completed
	dialRefused                     // RST came back: both paths work
)

// dialFrom connects from src (inside ns) to dst with a fixed source port,
// and resets the connection at once. Any error other than a refusal or
// timeout is returned.
func dialFrom(ctx context.Context, ns string, src, dst netip.AddrPort, timeout time.Duration) (dialResult, error) {
	var conn net.Conn
	var derr error
	err := InNamespace(ns, func() error {
		d := net.Dialer{
			LocalAddr: net.TCPAddrFromAddrPort(src),
			Timeout:   timeout,
			Control:   reuseAddr,
		}
		conn, derr = d.DialContext(ctx, "tcp", dst.String())
		return nil
	})
	if err != nil {
		return dialFailed, err
	}
	if derr == nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
		return dialConnected, nil
	}
	switch {
	case errors.Is(derr, syscall.ECONNREFUSED), errors.Is(derr, syscall.ECONNRESET):
		return dialRefused, nil
	case errors.Is(derr, syscall.EADDRINUSE), errors.Is(derr, syscall.EADDRNOTAVAIL):
		return dialFailed, derr
	}
	if ctx.Err() != nil {
		return dialFailed, ctx.Err()
	}
	return dialFailed, nil
}

// pingAll sends ICMP or ICMPv6 echo requests from src (inside ns) to dst,
// one per id, up to tries rounds, each round waiting up to timeout for the
// replies. It reports which ids got a reply.
func pingAll(ctx context.Context, ns string, src, dst netip.Addr, ids []uint16, tries int, timeout time.Duration) (map[uint16]bool, error) {
	network, reqType, replyType := "ip4:icmp", byte(8), byte(0)
	if src.Is6() {
		network, reqType, replyType = "ip6:ipv6-icmp", 128, 129
	}
	var conn net.PacketConn
	err := InNamespace(ns, func() error {
		var err error
		conn, err = net.ListenPacket(network, src.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("icmp socket in %s: %w", ns, err)
	}
	defer conn.Close()

	var mu sync.Mutex
	got := map[uint16]bool{}
	want := map[uint16]bool{}
	for _, id := range ids {
		want[id] = true
	}
	readerDone := make(chan struct{})
	stopRead := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 1500)
		for {
			conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			n, from, err := conn.ReadFrom(buf)
			select {
			case <-stopRead:
				return
			default:
			}
			if err != nil {
				continue
			}
			ia, ok := from.(*net.IPAddr)
			if !ok || n < 8 || buf[0] != replyType {
				continue
			}
			if a, ok := netip.AddrFromSlice(ia.IP); !ok || a.Unmap() != dst {
				continue
			}
			id := uint16(buf[4])<<8 | uint16(buf[5])
			mu.Lock()
			if want[id] {
				got[id] = true
			}
			mu.Unlock()
		}
	}()
	defer func() { close(stopRead); <-readerDone }()

	to := &net.IPAddr{IP: dst.AsSlice()}
	for try := 0; try < tries; try++ {
		sent := 0
		for _, id := range ids {
			mu.Lock()
			done := got[id]
			mu.Unlock()
			if done {
				continue
			}
			msg := []byte{reqType, 0, 0, 0, byte(id >> 8), byte(id), 0, byte(try + 1),
				'e', 's', 'l', 'a', 'b', 0, 0, 0}
			if !src.Is6() { // the kernel checksums ICMPv6 raw sockets itself
				c := icmpChecksum(msg)
				msg[2], msg[3] = byte(c>>8), byte(c)
			}
			if _, err := conn.WriteTo(msg, to); err != nil {
				return nil, fmt.Errorf("echo to %s: %w", dst, err)
			}
			sent++
		}
		if sent == 0 {
			break
		}
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			mu.Lock()
			all := len(got) == len(want)
			mu.Unlock()
			if all {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := make(map[uint16]bool, len(got))
	for id := range got {
		out[id] = true
	}
	return out, nil
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
