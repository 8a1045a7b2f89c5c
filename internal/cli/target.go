package cli

import (
	"net"
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
