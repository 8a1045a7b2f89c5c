package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/internal/rawsock"
	"github.com/ecmpscan/ecmpscan/internal/responder"
)

// responderFlags are the raw flag values of `ecmpscan responder`.
type responderFlags struct {
	listen      string
	tokenFile   string
	newToken    string
	allow       []string
	maxRuns     int
	maxDuration time.Duration
	rate        float64
	probeRate   float64
}

func newResponderCommand(s *Streams) *cobra.Command {
	var f responderFlags
	cmd := &cobra.Command{
		Use:   "responder --listen ADDR:PORT [--token-file FILE]",
		Short: "Run on the target's host: report which probe SYNs of a sweep arrive",
		Long: `Run on the host that is swept (the server side). A client that runs
"sweep --responder" or "trace --responder" registers its run over an authenticated control
connection; the responder watches exactly those SYNs arrive (a raw TCP
socket with a filter) and reports, per source port, how many arrived, when,
and with what TTL. A failing port whose SYNs arrive is lost on the way back;
one whose SYNs never arrive, on the way there.

For "trace --responder" it also traces the return paths of the flows that
fail although their SYNs arrived (and of healthy ones): TTL-limited SYN-ACKs
on each flow's exact reversed tuple, so routers hash them like the flow's
own answers. It sends them only to the registered client's address and
ports, from the registered target, one trace at a time, at most
--probe-rate per second and 64 flows x 32 TTLs x 3 probes per run.

Every request carries an HMAC of a shared token over a nonce and a
timestamp; wrong tokens, replays, stale clocks, oversized requests and runs
naming another address than the peer's own are refused with a log line,
before anything is sent. It needs CAP_NET_RAW.`,
		Example: `  ecmpscan responder --new-token /etc/ecmpscan/token
  ecmpscan responder --listen 198.18.2.2:7000 --token-file /etc/ecmpscan/token --allow 198.18.1.0/24`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.newToken != "" {
				if err := responder.WriteNewToken(f.newToken); err != nil {
					return &exitError{code: ExitUsage, err: fmt.Errorf("--new-token: %w", err)}
				}
				fmt.Fprintf(s.Out, "wrote a new token to %s (keep it secret; copy it to the client)\n", f.newToken)
				return nil
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			return runResponder(cmd.Context(), f, cfg, s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "", "ADDR:PORT to listen on for control connections")
	fl.StringVar(&f.tokenFile, "token-file", "", "the shared token's file (first line, at least 32 characters; default $"+responder.TokenEnv+")")
	fl.StringVar(&f.newToken, "new-token", "", "write a fresh random token to FILE and exit")
	fl.StringSliceVar(&f.allow, "allow", nil, "CIDR of peers that may register runs (repeatable; default: any peer with the token)")
	fl.IntVar(&f.maxRuns, "max-runs", responder.DefaultMaxRuns, "runs watched at once")
	fl.DurationVar(&f.maxDuration, "max-duration", responder.DefaultMaxDuration, "longest run")
	fl.Float64Var(&f.rate, "rate", responder.DefaultRate, "control requests per second")
	fl.Float64Var(&f.probeRate, "probe-rate", responder.DefaultProbeRate, "reverse probes per second (one return-path trace runs at a time)")
	return cmd
}

// config validates the flags and loads the token.
func (f *responderFlags) config() (responder.Config, error) {
	var cfg responder.Config
	if _, err := netip.ParseAddrPort(f.listen); err != nil {
		return cfg, usageError("--listen wants ADDR:PORT (an address of this host), got %q", f.listen)
	}
	for _, a := range f.allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return cfg, usageError("--allow %q is not a CIDR", a)
		}
		cfg.Allow = append(cfg.Allow, p.Masked())
	}
	switch {
	case f.maxRuns < 1 || f.maxRuns > 64:
		return cfg, usageError("--max-runs must be 1-64, got %d", f.maxRuns)
	case f.maxDuration < time.Second || f.maxDuration > time.Hour:
		return cfg, usageError("--max-duration must be 1s-1h, got %s", f.maxDuration)
	case !(f.rate > 0 && f.rate <= 1000):
		return cfg, usageError("--rate must be in (0, 1000], got %g", f.rate)
	case !(f.probeRate >= 1 && f.probeRate <= 50000):
		return cfg, usageError("--probe-rate must be 1-50000, got %g", f.probeRate)
	}
	token, err := responder.LoadToken(f.tokenFile)
	if err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	cfg.Token, cfg.MaxRuns, cfg.MaxDuration, cfg.Rate, cfg.ProbeRate = token, f.maxRuns, f.maxDuration, f.rate, f.probeRate
	return cfg, nil
}

func runResponder(ctx context.Context, f responderFlags, cfg responder.Config, s *Streams) error {
	cfg.Log = func(line string) {
		fmt.Fprintf(s.Err, "%s ecmpscan responder: %s\n", time.Now().UTC().Format(time.RFC3339), line)
	}
	var captures []responder.Capture
	for _, v6 := range []bool{false, true} {
		c, err := responder.OpenCapture(v6)
		switch {
		case errors.Is(err, rawsock.ErrPermission), errors.Is(err, rawsock.ErrUnsupported):
			return &exitError{code: ExitCannotProbe, err: fmt.Errorf("the responder watches SYNs on a raw socket: %w", err)}
		case err != nil && v6:
			cfg.Log(fmt.Sprintf("no IPv6 capture (%v): IPv4 runs only", err))
			continue
		case err != nil:
			return &exitError{code: ExitCannotProbe, err: err}
		}
		captures = append(captures, c)
	}
	srv, err := responder.NewServer(cfg)
	if err != nil {
		return &exitError{code: ExitUsage, err: err}
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		for _, c := range captures {
			c.Close()
		}
		return &exitError{code: ExitCannotProbe, err: fmt.Errorf("listen: %w", err)}
	}
	token := "--token-file FILE"
	if f.tokenFile == "" {
		token = "(with " + responder.TokenEnv + " set)"
	}
	fmt.Fprintf(s.Err, "ecmpscan responder listening on %s; on the client run:\n  ecmpscan sweep THIS-HOST:PORT --responder %s %s\n", ln.Addr(), ln.Addr(), token)
	return srv.Serve(ctx, ln, captures...)
}
