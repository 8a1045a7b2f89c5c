package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/internal/core"
)

// oneTarget checks that a probing command got exactly one HOST[:PORT].
func oneTarget(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError("%s takes exactly one target, HOST[:PORT]", cmd.Name())
	}
	return nil
}

// parseTarget splits HOST[:PORT], [V6]:PORT or a bare IPv6 address.
// portFlag is the --port value (0 when not given: port 80).
func parseTarget(arg string, portFlag int) (host string, port uint16, err error) {
	def := portFlag
	if def == 0 {
		def = 80
	}
	host, port, err = core.ParseTarget(arg, def, portFlag)
	if err != nil {
		return "", 0, usageError("bad %s", strings.TrimPrefix(err.Error(), core.ErrBadInput.Error()+": "))
	}
	return host, port, nil
}

// parsePorts reads a port list such as "30000-30063,31000" (core.ParsePorts).
func parsePorts(list string) ([]uint16, error) {
	ports, err := core.ParsePorts(list)
	if err != nil {
		return nil, usageError("bad %s", strings.TrimPrefix(err.Error(), core.ErrBadInput.Error()+": "))
	}
	return ports, nil
}
