package cli

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// defaultSports sits below Linux's default ephemeral range (32768-60999),
// so the sweep does not collide with the host's own connections.
const defaultSports = "30000-30063"

// sweepFlags are the raw flag values of `ecmpscan sweep`.
type sweepFlags struct {
	port     int
	sports   string
	count    int
	timeout  time.Duration
	rate     float64
	mode     string
	src      string
	icmp     int
	format   string
	quiet    bool
	noColor  bool
	family4  bool
	family6  bool
	maxPorts int
}

// sweepConfig is a validated sweep, ready to run.
type sweepConfig struct {
	host    string
	port    uint16
	family  int
	sports  []uint16
	count   int
	timeout time.Duration
	rate    float64
	mode    string
	src     netip.Addr
	icmp    int
	format  report.Format
	render  report.Options
}

func newSweepCommand(s *Streams) *cobra.Command {
	var f sweepFlags
	cmd := &cobra.Command{
		Use:   "sweep HOST[:PORT]",
		Short: "Probe a target from many source ports and report which ones fail",
		Long: `Sweep source ports toward HOST:PORT with raw TCP SYN probes, each repeated
--count times, plus ICMP echo probes with --icmp distinct identifiers. A port
that never gets an answer while others always do betrays one bad ECMP member.

Exit codes: 0 healthy, 1 some ports fail (ECMP-like fault), 2 bad input,
3 cannot probe, 4 every port fails, 130 interrupted.`,
		Example: `  ecmpscan sweep 198.18.2.2:3306
  ecmpscan sweep db.example.net -p 3306 --sport 40000-40255 -c 5
  ecmpscan sweep '[2001:db8:2::2]:443' --format json`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError("sweep takes exactly one target, HOST[:PORT]")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config(args[0], s)
			if err != nil {
				return err
			}
			return runSweep(cmd.Context(), cfg, s)
		},
	}
	fl := cmd.Flags()
	fl.IntVarP(&f.port, "port", "p", 0, "destination port (default 80, or the port in HOST:PORT)")
	fl.StringVar(&f.sports, "sport", defaultSports, "source ports: ranges and lists, e.g. 30000-30063,31000")
	fl.IntVarP(&f.count, "count", "c", 3, "probes per source port")
	fl.DurationVar(&f.timeout, "timeout", time.Second, "how long to wait for each reply")
	fl.Float64Var(&f.rate, "rate", 500, "probes per second toward the target")
	fl.StringVar(&f.mode, "mode", "auto", "auto, raw (TCP SYN on raw sockets) or connect (unprivileged connect())")
	fl.StringVar(&f.src, "src", "", "source address (default: the kernel's choice toward the target)")
	fl.IntVar(&f.icmp, "icmp", 8, "ICMP echo identifiers to probe, each --count times (0 disables)")
	fl.StringVar(&f.format, "format", "table", "output: table, json, jsonl or csv")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the verdict (table format)")
	fl.BoolVar(&f.noColor, "no-color", false, "no colours, even on a terminal")
	fl.BoolVarP(&f.family4, "ipv4", "4", false, "resolve HOST to IPv4 only")
	fl.BoolVarP(&f.family6, "ipv6", "6", false, "resolve HOST to IPv6 only")
	fl.IntVar(&f.maxPorts, "max-ports", 4096, "refuse sweeps of more source ports than this (a safety net)")
	return cmd
}

// config validates everything that can be checked without the network, so
// bad input never sends a packet.
func (f *sweepFlags) config(target string, s *Streams) (sweepConfig, error) {
	host, port, err := parseTarget(target, f.port)
	if err != nil {
		return sweepConfig{}, err
	}
	cfg := sweepConfig{host: host, port: port, count: f.count, timeout: f.timeout, rate: f.rate, mode: f.mode, icmp: f.icmp}
	if cfg.sports, err = parsePorts(f.sports); err != nil {
		return cfg, err
	}
	switch {
	case len(cfg.sports) > f.maxPorts:
		return cfg, usageError("%d source ports is more than --max-ports %d", len(cfg.sports), f.maxPorts)
	case f.count < 1:
		return cfg, usageError("--count must be at least 1, got %d", f.count)
	case f.timeout <= 0:
		return cfg, usageError("--timeout must be positive, got %s", f.timeout)
	case !(f.rate > 0) || f.rate > 1e6:
		return cfg, usageError("--rate must be between 0 and 1000000 probes per second, got %g", f.rate)
	case f.icmp < 0 || f.icmp > 1024:
		return cfg, usageError("--icmp must be between 0 and 1024, got %d", f.icmp)
	case f.mode != "auto" && f.mode != "raw" && f.mode != "connect":
		return cfg, usageError("unknown --mode %q (want auto, raw or connect)", f.mode)
	case f.family4 && f.family6:
		return cfg, usageError("-4 and -6 exclude each other")
	}
	if f.family4 {
		cfg.family = 4
	} else if f.family6 {
		cfg.family = 6
	}
	if f.src != "" {
		if cfg.src, err = netip.ParseAddr(f.src); err != nil {
			return cfg, usageError("bad --src %q: not an IP address", f.src)
		}
		cfg.src = cfg.src.Unmap()
	}
	if cfg.format, err = report.ParseFormat(f.format); err != nil {
		return cfg, &exitError{code: ExitUsage, err: err}
	}
	cfg.render = report.Options{
		Quiet: f.quiet,
		Color: s.OutTTY && !f.noColor && s.Getenv("NO_COLOR") == "",
	}
	return cfg, nil
}

// runSweep resolves, opens the prober, runs the engine, buckets the results
// and renders the report. Its error carries the exit code.
func runSweep(ctx context.Context, cfg sweepConfig, s *Streams) error {
	addr, err := resolve(ctx, cfg.host, cfg.family)
	if err != nil {
		return err
	}
	target := netip.AddrPortFrom(addr, cfg.port)
	src := cfg.src
	if !src.IsValid() {
		if src, err = sourceFor(target); err != nil {
			return err
		}
	} else if src.Is4() != addr.Is4() {
		return usageError("--src %s and target %s are of different address families", src, addr)
	}

	rng := rand.New(rand.NewPCG(randomUint64(), randomUint64()))
	var echo []hash.FiveTuple
	if cfg.icmp > 0 {
		echo = probe.EchoTuples(src, addr, uint16(rng.Uint32()), cfg.icmp)
	}
	eng, mode, closeProber, icmpSkipped, err := openProber(cfg, src, target, echo, s)
	if err != nil {
		return err
	}
	defer closeProber()
	if icmpSkipped != "" {
		echo = nil
	}
	tcpKind := probe.KindTCPSYN
	if mode == "connect" {
		tcpKind = probe.KindConnect
	}
	plan := probe.Plan{
		Probes:  probe.Order(probe.Tuples(src, target, cfg.sports), tcpKind, echo, cfg.count, rng),
		Rate:    cfg.rate,
		Timeout: cfg.timeout,
		Grace:   min(cfg.timeout, 500*time.Millisecond),
	}
	progress := newProgress(s, cfg.render.Quiet || cfg.format != report.FormatTable)
	eng.OnProgress = progress.update
	eng.Secret = randomUint64()

	started := time.Now()
	results, stats, runErr := eng.Run(ctx, plan)
	progress.done()
	interrupted := errors.Is(runErr, context.Canceled) || ctx.Err() != nil
	if runErr != nil && !interrupted {
		return cannotProbe(runErr)
	}

	ports, echoIDs := hash.BySourcePort(), hash.BySourcePort()
	for _, r := range results {
		if r.Kind == probe.KindICMPEcho {
			echoIDs.Add(r.Observation())
		} else {
			ports.Add(r.Observation())
		}
	}
	sw := report.Sweep{
		Host: cfg.host, Target: target, Source: src, Mode: mode, Count: cfg.count, Rate: cfg.rate,
		Timeout: cfg.timeout, Started: started, Duration: time.Since(started), Interrupted: interrupted,
		Ports: ports.Buckets(), ICMP: report.ICMP{Skipped: icmpSkipped, IDs: echoIDs.Buckets()},
		Unmatched: stats.Unmatched, Malformed: stats.Malformed, HalfOpen: stats.HalfOpen,
	}
	if cfg.icmp == 0 {
		sw.ICMP.Skipped = "disabled with --icmp 0"
	}
	sw.Summary = report.Summarize(cfg.host, target, sw.Ports, sw.ICMP)
	if err := report.Render(s.Out, cfg.format, sw, cfg.render); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	if interrupted {
		return resultCode(ExitInterrupted)
	}
	if code := sw.Summary.ExitCode(); code != 0 {
		return resultCode(code)
	}
	return nil
}

// openProber picks raw or connect mode. In auto mode a missing privilege is
// not an error: it falls back to connect mode and says so on stderr. In
// connect mode ICMP goes over unprivileged ping sockets where the kernel
// allows them; icmpSkipped says why not otherwise.
func openProber(cfg sweepConfig, src netip.Addr, target netip.AddrPort, echo []hash.FiveTuple, s *Streams) (eng *probe.Engine, mode string, closeFn func(), icmpSkipped string, err error) {
	if cfg.mode != "connect" {
		raw, err := probe.OpenRaw(src, target, len(echo) > 0)
		switch {
		case err == nil:
			return &probe.Engine{Sender: raw, Receivers: raw.Receivers()}, "raw", func() { raw.Close() }, "", nil
		case errors.Is(err, probe.ErrPermission) && cfg.mode == "auto":
			fmt.Fprintf(s.Err, "ecmpscan: raw sockets need root or CAP_NET_RAW; using connect mode (for raw SYN probes: sudo setcap cap_net_raw+ep $(command -v ecmpscan))\n")
		case errors.Is(err, probe.ErrPermission):
			return nil, "", nil, "", cannotProbe(fmt.Errorf("%w; run as root, grant the capability with `sudo setcap cap_net_raw+ep $(command -v ecmpscan)`, or use --mode connect", probe.ErrPermission))
		default:
			return nil, "", nil, "", cannotProbe(fmt.Errorf("open raw sockets: %w", err))
		}
	}
	cp := probe.NewConnectProber(cfg.timeout)
	eng = &probe.Engine{Sender: cp, Receivers: []probe.Receiver{cp}}
	closeFn = func() { cp.Close() }
	if len(echo) == 0 {
		return eng, "connect", closeFn, "", nil
	}
	ping, err := probe.OpenPing(src, echo)
	if err != nil {
		return eng, "connect", closeFn, fmt.Sprintf("connect mode: %v", err), nil
	}
	eng.Sender = probe.SenderByKind{probe.KindConnect: cp, probe.KindICMPEcho: ping}
	eng.Receivers = append(eng.Receivers, ping.Receivers()...)
	return eng, "connect", func() { cp.Close(); ping.Close() }, "", nil
}

func randomUint64() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}
