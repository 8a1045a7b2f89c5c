// Package exporter is `ecmpscan exporter`: blackbox_exporter's
// multi-target pattern for ECMP sweeps. Prometheus asks
// /probe?target=HOST:PORT&module=NAME, the exporter runs one sweep through
// the same core as the CLI and answers in the Prometheus text format. See
// the README's "Fleet scale" section for the threat model.
package exporter

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/probe"
)

// ErrConfig marks a configuration that cannot be used.
var ErrConfig = errors.New("bad config")

// Config is a validated exporter configuration.
type Config struct {
	Modules map[string]Module
	// Allow lists the prefixes targets must resolve into; required.
	Allow  []netip.Prefix
	Limits Limits
}

// Module is one way of sweeping a target.
type Module struct {
	Name    string
	Port    uint16 // when the target has none (default 80)
	Sports  []uint16
	Count   int
	Rate    float64
	Timeout time.Duration
	ICMP    int
	Mode    core.Mode
	// Trace also traces the failing ports and exports the suspect.
	Trace bool
	// ExportPorts adds one series per source port (ecmpscan_port_up).
	ExportPorts bool
}

// Limits bound the exporter as a whole.
type Limits struct {
	Concurrent int     // sweeps at once (default 4)
	Rate       float64 // probes per second over all sweeps (default 5000)
}

// Defaults, as the CLI's.
const (
	defaultPort       = 80
	defaultSports     = "30000-30063"
	defaultCount      = 3
	defaultRate       = 500
	defaultTimeout    = time.Second
	defaultICMP       = 8
	defaultConcurrent = 4
	defaultLimitRate  = 5000
	maxPorts          = 4096
	// traceMaxTTL and traceHopProbes are the trace phase of a module with
	// trace: true, as the CLI's defaults.
	traceMaxTTL    = 16
	traceHopProbes = 2
)

// LoadConfig reads and validates a config file; errors name the file, the
// line and the key.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(path, b)
}

// configError is an error at a line of the file, about a key.
func configError(file string, n *yaml.Node, key, format string, args ...any) error {
	return fmt.Errorf("%w: %s:%d: %s: %s", ErrConfig, file, n.Line, key, fmt.Sprintf(format, args...))
}

// ParseConfig validates a config read from file (named in errors).
func ParseConfig(file string, b []byte) (Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %v", ErrConfig, file, err)
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return Config{}, fmt.Errorf("%w: %s: want a mapping with modules, allow and limits", ErrConfig, file)
	}
	cfg := Config{Modules: map[string]Module{}, Limits: Limits{Concurrent: defaultConcurrent, Rate: defaultLimitRate}}
	root := doc.Content[0]
	seen := map[string]bool{}
	err := eachKey(file, root, "", func(key string, v *yaml.Node) error {
		seen[key] = true
		switch key {
		case "modules":
			return cfg.parseModules(file, v)
		case "allow":
			return cfg.parseAllow(file, v)
		case "limits":
			return cfg.parseLimits(file, v)
		}
		return configError(file, v, key, "unknown key (want modules, allow, limits)")
	})
	if err != nil {
		return Config{}, err
	}
	switch {
	case !seen["allow"] || len(cfg.Allow) == 0:
		return Config{}, configError(file, root, "allow", "required: the prefixes targets may be in (there is no default \"anywhere\")")
	case len(cfg.Modules) == 0:
		return Config{}, configError(file, root, "modules", "required: at least one module")
	}
	return cfg, nil
}

// eachKey calls fn for every key of a mapping, refusing duplicates.
func eachKey(file string, m *yaml.Node, prefix string, fn func(key string, v *yaml.Node) error) error {
	if m.Kind != yaml.MappingNode {
		return configError(file, m, strings.TrimSuffix(prefix, "."), "want a mapping")
	}
	dup := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if dup[k.Value] {
			return configError(file, k, prefix+k.Value, "given twice")
		}
		dup[k.Value] = true
		if err := fn(k.Value, v); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) parseModules(file string, m *yaml.Node) error {
	return eachKey(file, m, "modules.", func(name string, v *yaml.Node) error {
		if name == "" || strings.ContainsAny(name, " \t\"{}=,") {
			return configError(file, v, "modules."+name, "a module name is a plain word")
		}
		mod, err := parseModule(file, name, v)
		if err != nil {
			return err
		}
		c.Modules[name] = mod
		return nil
	})
}

func parseModule(file, name string, m *yaml.Node) (Module, error) {
	mod := Module{Name: name, Port: defaultPort, Count: defaultCount, Rate: defaultRate, Timeout: defaultTimeout,
		ICMP: defaultICMP, Mode: core.ModeAuto}
	mod.Sports, _ = core.ParsePorts(defaultSports)
	prefix := "modules." + name + "."
	err := eachKey(file, m, prefix, func(key string, v *yaml.Node) error {
		bad := func(format string, args ...any) error { return configError(file, v, prefix+key, format, args...) }
		switch key {
		case "port":
			n, err := intIn(v, 1, 65535)
			if err != nil {
				return bad("%v", err)
			}
			mod.Port = uint16(n)
		case "sport":
			ports, err := core.ParsePorts(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode {
				why := "not a list"
				if err != nil {
					why = strings.TrimPrefix(err.Error(), core.ErrBadInput.Error()+": ")
				}
				return bad("want source ports like 30000-30063,31000 (%s)", why)
			}
			if len(ports) > maxPorts {
				return bad("%d source ports, at most %d", len(ports), maxPorts)
			}
			mod.Sports = ports
		case "count":
			n, err := intIn(v, 1, probe.MaxRepeats-1)
			if err != nil {
				return bad("%v", err)
			}
			mod.Count = n
		case "rate":
			f, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || v.Kind != yaml.ScalarNode || !(f > 0 && f <= 1e6) {
				return bad("want probes per second, more than 0 and at most 1000000")
			}
			mod.Rate = f
		case "timeout":
			d, err := time.ParseDuration(v.Value)
			if err != nil || v.Kind != yaml.ScalarNode || d < time.Millisecond || d > time.Minute {
				return bad("want a duration from 1ms to 1m, like 1s or 500ms")
			}
			mod.Timeout = d
		case "icmp":
			n, err := intIn(v, 0, 1024)
			if err != nil {
				return bad("%v", err)
			}
			mod.ICMP = n
		case "mode":
			switch core.Mode(v.Value) {
			case core.ModeAuto, core.ModeRaw, core.ModeConnect:
				mod.Mode = core.Mode(v.Value)
			default:
				return bad("want auto, raw or connect")
			}
		case "trace":
			b, err := boolOf(v)
			if err != nil {
				return bad("%v", err)
			}
			mod.Trace = b
		case "export_ports":
			b, err := boolOf(v)
			if err != nil {
				return bad("%v", err)
			}
			mod.ExportPorts = b
		default:
			return bad("unknown key (want %s)", strings.Join(moduleKeys, ", "))
		}
		return nil
	})
	if err == nil && mod.Trace && mod.Mode == core.ModeConnect {
		err = configError(file, m, prefix+"trace", "tracing needs raw sockets; it does not work with mode: connect")
	}
	return mod, err
}

var moduleKeys = []string{"port", "sport", "count", "rate", "timeout", "icmp", "mode", "trace", "export_ports"}

func intIn(v *yaml.Node, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v.Value)
	if err != nil || v.Kind != yaml.ScalarNode || n < lo || n > hi {
		return 0, fmt.Errorf("want a whole number from %d to %d", lo, hi)
	}
	return n, nil
}

func boolOf(v *yaml.Node) (bool, error) {
	var b bool
	if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&b) != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

func (c *Config) parseAllow(file string, v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return configError(file, v, "allow", "want a list of prefixes, like [198.18.0.0/15, 2001:db8::/32]")
	}
	for _, item := range v.Content {
		p, err := netip.ParsePrefix(item.Value)
		if err != nil || item.Kind != yaml.ScalarNode {
			return configError(file, item, "allow", "%q is not a prefix like 198.18.0.0/15", item.Value)
		}
		c.Allow = append(c.Allow, p.Masked())
	}
	return nil
}

func (c *Config) parseLimits(file string, m *yaml.Node) error {
	return eachKey(file, m, "limits.", func(key string, v *yaml.Node) error {
		switch key {
		case "concurrent":
			n, err := intIn(v, 1, 256)
			if err != nil {
				return configError(file, v, "limits.concurrent", "%v", err)
			}
			c.Limits.Concurrent = n
		case "rate":
			f, err := strconv.ParseFloat(v.Value, 64)
			if err != nil || v.Kind != yaml.ScalarNode || !(f > 0 && f <= 1e6) {
				return configError(file, v, "limits.rate", "want probes per second, more than 0 and at most 1000000")
			}
			c.Limits.Rate = f
		default:
			return configError(file, v, "limits."+key, "unknown key (want concurrent, rate)")
		}
		return nil
	})
}

// Allowed reports whether a target address may be probed.
func (c Config) Allowed(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range c.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ModuleNames lists the modules, sorted.
func (c Config) ModuleNames() []string {
	out := make([]string, 0, len(c.Modules))
	for n := range c.Modules {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
