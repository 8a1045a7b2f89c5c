package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/internal/lab"
)

// Exit codes: a contract for scripts (see README).
const (
	ExitHealthy     = 0
	ExitFault       = 1
	ExitUsage       = 2
	ExitCannotProbe = 3
	ExitTargetDown  = 4
	ExitInterrupted = 130
)

// exitError carries the exit code an error maps to.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// resultCode ends a command that ran and rendered, with a non-zero verdict.
type resultCode int

func (c resultCode) Error() string { return fmt.Sprintf("exit %d", int(c)) }

// NewRootCommand builds the command tree.
func NewRootCommand(s *Streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "ecmpscan",
		Short: "Find the bad ECMP path: sweep source ports with TCP SYN and ICMP probes",
		Long: `ecmpscan finds the one bad member of an ECMP group when "ping works but some
TCP connections time out". It sweeps source ports with raw TCP SYN probes (and
ICMP echo with varying identifiers), repeats each, matches every reply and says
which flows fail on every try.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("ecmpscan {{.Version}}\n")
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetIn(s.In)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: err}
	})
	root.AddCommand(newSweepCommand(s), newTraceCommand(s), newHashCommand(s), newLabCommand(s), newResponderCommand(s), newExporterCommand(s))
	return root
}

// Execute runs the command line and returns the process exit code. Errors
// are printed as one line on stderr.
func Execute(ctx context.Context, args []string, s *Streams) int {
	root := NewRootCommand(s)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitHealthy
	}
	var rc resultCode
	if errors.As(err, &rc) {
		return int(rc)
	}
	fmt.Fprintf(s.Err, "ecmpscan: %v\n", err)
	var ee *exitError
	var ce *core.Error
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ce) && ce.Kind == core.BadInput:
		return ExitUsage
	case errors.As(err, &ce):
		return ExitCannotProbe
	case errors.Is(err, lab.ErrBadSpec), isCobraUsage(err):
		return ExitUsage
	case errors.Is(err, context.Canceled):
		return ExitInterrupted
	}
	// Anything else is a command that could not do its job (lab commands).
	return 1
}

// isCobraUsage recognises cobra's own errors for unknown commands and wrong
// argument counts, which it does not type.
func isCobraUsage(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command", "unknown flag", "unknown shorthand", "accepts ", "requires ", "invalid argument"} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}
