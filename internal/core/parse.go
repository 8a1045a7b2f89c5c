package core

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// ErrBadInput marks user input that cannot be run: a target or a port list
// that does not parse.
var ErrBadInput = errors.New("bad input")

func bad(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// ParseTarget splits HOST[:PORT], [V6]:PORT or a bare IPv6 address (the CLI
// and the exporter read targets alike). defaultPort is the port when the
// target has none; a port in the target must agree with a non-zero
// mustMatch.
func ParseTarget(arg string, defaultPort, mustMatch int) (host string, port uint16, err error) {
	if arg == "" {
		return "", 0, bad("empty target")
	}
	host, portText := arg, ""
	switch {
	case strings.HasPrefix(arg, "["):
		h, p, splitErr := net.SplitHostPort(arg)
		if splitErr != nil {
			end := strings.IndexByte(arg, ']')
			if end < 0 || end != len(arg)-1 {
				return "", 0, bad("target %q: want [ADDR]:PORT", arg)
			}
			h, p = arg[1:end], ""
		}
		host, portText = h, p
	case strings.Count(arg, ":") == 1:
		h, p, splitErr := net.SplitHostPort(arg)
		if splitErr != nil {
			return "", 0, bad("target %q: %v", arg, splitErr)
		}
		host, portText = h, p
	}
	if host == "" {
		return "", 0, bad("target %q: no host", arg)
	}
	if portText != "" {
		n, convErr := strconv.Atoi(portText)
		if convErr != nil || n < 1 || n > 65535 {
			return "", 0, bad("target port %q: want 1-65535", portText)
		}
		if mustMatch != 0 && mustMatch != n {
			return "", 0, bad("target port %d and --port %d disagree", n, mustMatch)
		}
		return host, uint16(n), nil
	}
	if defaultPort < 1 || defaultPort > 65535 {
		return "", 0, bad("port %d: want 1-65535", defaultPort)
	}
	return host, uint16(defaultPort), nil
}

// ParsePorts reads a port list such as "30000-30063,31000". Duplicates are
// dropped; the result is sorted.
func ParsePorts(list string) ([]uint16, error) {
	var out []uint16
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, bad("port list %q: empty element", list)
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
				return nil, bad("port range %q: reversed", part)
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
		return 0, bad("port %q: want 1-65535", s)
	}
	return n, nil
}
