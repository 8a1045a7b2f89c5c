package cli

import (
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// minTimeout is the shortest --timeout: below it no reply can be told
// from loss, and a sweep would report its own impatience as path loss.
const minTimeout = time.Millisecond

// probeFlags are the flags sweep and trace share: what to probe, how often,
// how fast, and how to print.
type probeFlags struct {
	port      int
	sports    string
	count     int
	timeout   time.Duration
	rate      float64
	src       string
	quiet     bool
	noColor   bool
	family4   bool
	family6   bool
	maxPorts  int
	maxProbes int
}

func (f *probeFlags) register(fl *pflag.FlagSet, defaultSports string) {
	fl.IntVarP(&f.port, "port", "p", 0, "destination port (default 80, or the port in HOST:PORT)")
	fl.StringVar(&f.sports, "sport", defaultSports, "source ports: ranges and lists, e.g. 30000-30063,31000")
	fl.IntVarP(&f.count, "count", "c", 3, "end-to-end probes per source port")
	fl.DurationVar(&f.timeout, "timeout", time.Second, "how long to wait for each reply")
	fl.Float64Var(&f.rate, "rate", 500, "probes per second toward the target")
	fl.StringVar(&f.src, "src", "", "source address (default: the kernel's choice toward the target)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "print only the verdict (table format)")
	fl.BoolVar(&f.noColor, "no-color", false, "no colours, even on a terminal")
	fl.BoolVarP(&f.family4, "ipv4", "4", false, "resolve HOST to IPv4 only")
	fl.BoolVarP(&f.family6, "ipv6", "6", false, "resolve HOST to IPv6 only")
	fl.IntVar(&f.maxPorts, "max-ports", 4096, "refuse more source ports than this (a safety net)")
	fl.IntVar(&f.maxProbes, "max-probes", 1_000_000, "refuse runs of more probes than this in all (a safety net)")
}

// probeConfig is the validated form of probeFlags.
type probeConfig struct {
	target    core.Target
	probing   core.Probing
	maxProbes int
	render    report.Options
}

// config checks everything that can be checked without the network, so bad
// input never sends a packet.
func (f *probeFlags) config(target string, s *Streams) (probeConfig, error) {
	host, port, err := parseTarget(target, f.port)
	if err != nil {
		return probeConfig{}, err
	}
	cfg := probeConfig{
		target:    core.Target{Host: host, Port: port},
		probing:   core.Probing{Count: f.count, Timeout: f.timeout, Rate: f.rate},
		maxProbes: f.maxProbes,
	}
	if cfg.probing.Ports, err = parsePorts(f.sports); err != nil {
		return cfg, err
	}
	switch {
	case len(cfg.probing.Ports) > f.maxPorts:
		return cfg, usageError("%d source ports is more than --max-ports %d", len(cfg.probing.Ports), f.maxPorts)
	case f.count < 1 || f.count >= probe.MaxRepeats:
		return cfg, usageError("--count must be between 1 and %d, got %d", probe.MaxRepeats-1, f.count)
	case f.timeout < minTimeout:
		return cfg, usageError("--timeout must be at least %s, got %s", minTimeout, f.timeout)
	case !(f.rate > 0) || f.rate > 1e6:
		return cfg, usageError("--rate must be between 0 and 1000000 probes per second, got %g", f.rate)
	case f.maxProbes < 1:
		return cfg, usageError("--max-probes must be positive, got %d", f.maxProbes)
	case f.family4 && f.family6:
		return cfg, usageError("-4 and -6 exclude each other")
	}
	if f.family4 {
		cfg.target.Family = 4
	} else if f.family6 {
		cfg.target.Family = 6
	}
	if f.src != "" {
		src, err := netip.ParseAddr(f.src)
		if err != nil {
			return cfg, usageError("bad --src %q: not an IP address", f.src)
		}
		cfg.target.Source = src.Unmap()
	}
	cfg.render = report.Options{
		Quiet: f.quiet,
		Color: s.OutTTY && !f.noColor && s.Getenv("NO_COLOR") == "",
	}
	return cfg, nil
}

// checkProbes refuses a run whose probes add up to more than --max-probes.
func (c probeConfig) checkProbes(total int) error {
	if total > c.maxProbes {
		return usageError("this run would send %d probes, more than --max-probes %d: fewer ports, a lower --count, or raise --max-probes", total, c.maxProbes)
	}
	return nil
}
