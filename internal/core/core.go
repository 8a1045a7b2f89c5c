// Package core runs ecmpscan's jobs: a sweep, a trace, and a sweep followed
// by a trace of its flows, each given a validated config and the probers
// to run it with. The command line, the exporter and the tests all call it;
// it knows nothing of flags or output formats, and returns the report
// that a renderer prints.
package core

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/probe"
)

// Mode is how TCP probes are sent.
type Mode string

const (
	ModeAuto    Mode = "auto"    // raw when privileged, else connect
	ModeRaw     Mode = "raw"     // TCP SYN on raw sockets
	ModeConnect Mode = "connect" // unprivileged connect()
)

// Target is what to probe, as the user named it.
type Target struct {
	Host   string // a name or an address, as written (an IPv6 address may carry a zone)
	Port   uint16
	Family int        // 0 for either, 4 or 6
	Source netip.Addr // invalid: the system's choice toward the target
}

// Probing is how much to send and how fast.
type Probing struct {
	Ports   []uint16 // source ports, one flow each
	Count   int      // end-to-end probes per flow
	Rate    float64  // probes per second
	Timeout time.Duration
}

// SweepConfig is a validated sweep.
type SweepConfig struct {
	Target
	Probing
	Mode Mode
	ICMP int // echo identifiers to probe; 0 for none
	// Plan, when set, sizes the sweep by confidence and probes in rounds
	// until settled; Probing.Count is then ignored.
	Plan *hash.Plan
	// Trace, when set, traces the sweep's failing flows and some healthy
	// ones afterwards.
	Trace *TraceOptions
}

// TraceOptions are the hop-by-hop phase's settings.
type TraceOptions struct {
	MaxTTL    int
	HopProbes int
	// Patience is how long silent hops of routers that rate-limit their
	// ICMP errors may be probed again after the first pass (internal/retry),
	// and again after a second look, for its flows; 0: never.
	Patience time.Duration
	// Flows bounds the flows traced hop by hop after every one is
	// classified end to end: every failing one up to Flows, a quarter as
	// many flaky, healthy ones up to TracedBound in all (pickTraced), and
	// a second look's up to Flows more (look.go); 0: every flow, and no
	// look.
	Flows int
	// AliasTest says when the trace asks the routers which of their
	// addresses are one router's (alias.go, ratelimit_alias.go).
	AliasTest AliasTests
}

// AliasTests says when a trace runs its alias tests.
type AliasTests uint8

const (
	// AliasTestsNever, the zero value (the exporter's: a scrape has a
	// deadline).
	AliasTestsNever AliasTests = iota
	// AliasTestsUndecided: where the diagnosis cannot decide, each test
	// while it still cannot (trace's default).
	AliasTestsUndecided
	// AliasTestsAlways: both tests, whatever the diagnosis, to map which
	// addresses are one router's.
	AliasTestsAlways
)

// TraceConfig is a validated trace.
type TraceConfig struct {
	Target
	Probing
	TraceOptions
}

// ErrorKind says what went wrong before anything could be measured.
type ErrorKind int

const (
	// BadInput: the request cannot be run as given (exit 2).
	BadInput ErrorKind = iota + 1
	// CannotProbe: this host cannot probe the target (exit 3).
	CannotProbe
)

// Error is a job that could not run.
type Error struct {
	Kind ErrorKind
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func badInput(format string, args ...any) error {
	return &Error{Kind: BadInput, Err: fmt.Errorf(format, args...)}
}

func cannotProbe(err error) error { return &Error{Kind: CannotProbe, Err: err} }

// Prober is one set of open sockets: it sends probes and hands over
// replies.
type Prober interface {
	probe.Sender
	Receivers() []probe.Receiver
	Close() error
}

// Probers opens probers. Errors wrap probe.ErrPermission without the
// privilege and probe.ErrUnsupported where the system has no such sockets.
type Probers interface {
	// Raw opens raw sockets for TCP SYN probes toward dst (and ICMP, for
	// echo probes and for the time-exceeded answers of a trace).
	Raw(src netip.Addr, dst netip.AddrPort, icmp bool) (Prober, error)
	// Connect opens the unprivileged connect() prober.
	Connect(timeout time.Duration) (Prober, error)
	// Ping opens unprivileged ICMP echo sockets, one per echo flow.
	Ping(src netip.Addr, echo []hash.FiveTuple) (Prober, error)
	// Alias opens the raw ICMP socket of the alias test (IPv4): an echo
	// request per pair, on probe.AliasTuples(src, pairs).
	Alias(src netip.Addr, pairs []probe.AliasPair) (Prober, error)
}

// Resolver turns a host into an address and picks the source address.
type Resolver interface {
	Resolve(host string, family int) (netip.Addr, error)
	SourceFor(dst netip.AddrPort) (netip.Addr, error)
}

// Env is what a job runs with: the outside world, injected.
type Env struct {
	Probers  Probers
	Resolver Resolver
	Clock    probe.Clock // nil: the system clock
	// Random, when set, seeds cookies and shuffles (tests make runs
	// repeatable with it); nil: crypto/rand.
	Random func() uint64
	// Progress, when set, gets progress snapshots from every phase.
	Progress func(probe.Progress)
	// Notice, when set, gets remarks for the user (a fallback to connect
	// mode, a skipped phase).
	Notice func(string)
	// Responder, when set, is the target's responder: a sweep registers
	// its SYNs with it and reports which arrived (sweep --responder).
	Responder Responder
	// FirstHop, when set, asks this host's routing table which gateway a
	// flow leaves by (route.Lookup), so a trace can name a first hop
	// that answers no probe.
	FirstHop route.LookupFunc
}

// Responder is the far end of a two-ended sweep (responder.Client).
type Responder interface {
	Register(ctx context.Context, r responder.Register) (responder.Registered, error)
	Report(ctx context.Context, run string) (responder.Report, error)
	// Reverse starts tracing the return paths of some of a run's flows.
	Reverse(ctx context.Context, r responder.ReverseRequest) (responder.ReverseStarted, error)
	// Name is the responder's HOST:PORT; Retried counts the control
	// connections it had to try again.
	Name() string
	Retried() int
}

func (e Env) clock() probe.Clock {
	if e.Clock == nil {
		return probe.SystemClock{}
	}
	return e.Clock
}

func (e Env) random() uint64 {
	if e.Random != nil {
		return e.Random()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

func (e Env) rng() *mrand.Rand { return mrand.New(mrand.NewPCG(e.random(), e.random())) }

func (e Env) notice(format string, args ...any) {
	if e.Notice != nil {
		e.Notice(fmt.Sprintf(format, args...))
	}
}

// resolve turns the target into an address and a source address. The
// address keeps an IPv6 zone for the sockets; flows use it without.
func resolve(t Target, env Env) (netip.AddrPort, netip.Addr, error) {
	if env.Resolver == nil {
		return netip.AddrPort{}, netip.Addr{}, errors.New("core: no resolver")
	}
	addr, err := env.Resolver.Resolve(t.Host, t.Family)
	if err != nil {
		return netip.AddrPort{}, netip.Addr{}, err
	}
	target := netip.AddrPortFrom(addr, t.Port)
	src := t.Source
	if !src.IsValid() {
		if src, err = env.Resolver.SourceFor(target); err != nil {
			return target, src, err
		}
	}
	if src.Is4() != addr.Is4() {
		return target, src, badInput("source %s and target %s are of different address families", src, addr)
	}
	if addr.Zone() != "" && src.Zone() == "" {
		src = src.WithZone(addr.Zone())
	}
	return target, src, nil
}

// unzoned is an address as it appears in packets.
func unzoned(a netip.Addr) netip.Addr { return a.WithZone("") }
