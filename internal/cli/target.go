package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// oneTarget checks that a probing command got exactly one HOST[:PORT].
func oneTarget(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError("%s takes exactly one target, HOST[:PORT]", cmd.Name())
	}
	return nil
}

// parseTarget splits HOST[:PORT], [V6]:PORT or a bare IPv6 address.
// portFlag is the --port value (0 when not given).
func parseTarget(arg string, portFlag int) (host string, port uint16, err error) {
	if arg == "" {
		return "", 0, usageError("empty target")
	}
	host, portText := arg, ""
	switch {
	case strings.HasPrefix(arg, "["):
		h, p, splitErr := net.SplitHostPort(arg)
		if splitErr != nil {
			end := strings.IndexByte(arg, ']')
			if end < 0 || end != len(arg)-1 {
				return "", 0, usageError("bad target %q: want [ADDR]:PORT", arg)
			}
			h, p = arg[1:end], ""
		}
		host, portText = h, p
	case strings.Count(arg, ":") == 1:
		h, p, splitErr := net.SplitHostPort(arg)
		if splitErr != nil {
			return "", 0, usageError("bad target %q: %v", arg, splitErr)
		}
		host, portText = h, p
	}
	if host == "" {
		return "", 0, usageError("bad target %q: no host", arg)
	}
	if portText != "" {
		n, convErr := strconv.Atoi(portText)
		if convErr != nil || n < 1 || n > 65535 {
			return "", 0, usageError("bad target port %q: want 1-65535", portText)
		}
		if portFlag != 0 && portFlag != n {
			return "", 0, usageError("target port %d and --port %d disagree", n, portFlag)
		}
		return host, uint16(n), nil
	}
	switch {
	case portFlag == 0:
		return host, 80, nil
	case portFlag < 1 || portFlag > 65535:
		return "", 0, usageError("bad --port %d: want 1-65535", portFlag)
	}
	return host, uint16(portFlag), nil
}

// parsePorts reads a port list such as "30000-30063,31000". Duplicates are
// dropped; the result is sorted.
func parsePorts(list string) ([]uint16, error) {
	var out []uint16
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, usageError("bad port list %q: empty element", list)
		}
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := portNumber(lo)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = portNumber(hi); err != nil {
				return nil, err
			}
			if last < first {
				return nil, usageError("bad port range %q: reversed", part)
			}
		}
		for p := first; p <= last; p++ {
			out = append(out, uint16(p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func portNumber(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > 65535 {
		return 0, usageError("bad port %q: want 1-65535", s)
	}
	return n, nil
}

// resolve turns the host into one address, preferring the family asked for.
func resolve(ctx context.Context, host string, family int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if (family == 4 && !a.Is4()) || (family == 6 && !a.Is6()) {
			return netip.Addr{}, usageError("%s is not an IPv%d address", host, family)
		}
		return a, nil
	}
	network := map[int]string{0: "ip", 4: "ip4", 6: "ip6"}[family]
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			err = errors.New(dnsErr.Err)
		}
		return netip.Addr{}, cannotProbe(fmt.Errorf("cannot resolve %q: %v", host, err))
	}
	return addrs[0].Unmap(), nil
}

// sourceFor asks the kernel which source address it would use toward dst,
// without sending anything (a connected UDP socket only looks up a route).
func sourceFor(dst netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, cannotProbe(fmt.Errorf("no route to %s: %v", dst.Addr(), err))
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// resolveTarget resolves the host and picks the source address (the one
// given, or the kernel's choice toward the target).
func resolveTarget(ctx context.Context, host string, port uint16, family int, src netip.Addr) (netip.AddrPort, netip.Addr, error) {
	addr, err := resolve(ctx, host, family)
	if err != nil {
		return netip.AddrPort{}, netip.Addr{}, err
	}
	target := netip.AddrPortFrom(addr, port)
	if !src.IsValid() {
		src, err = sourceFor(target)
		return target, src, err
	}
	if src.Is4() != addr.Is4() {
		return target, src, usageError("--src %s and target %s are of different address families", src, addr)
	}
	return target, src, nil
}
