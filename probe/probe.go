// Package probe sends probes and matches their replies: the raw TCP SYN and
// ICMP echo probers, the unprivileged connect prober, and the paced
// send/receive engine they share.
package probe

import (
	"errors"
	"net/netip"
	"syscall"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Kind is what a probe sends.
type Kind uint8

const (
	KindTCPSYN Kind = iota + 1
	KindICMPEcho
	KindConnect
	// KindTCPSYNACK is a reverse probe: a SYN-ACK on the reversed tuple,
	// from the server's side (the responder's return-path traces).
	KindTCPSYNACK
)

func (k Kind) String() string {
	switch k {
	case KindTCPSYN:
		return "tcp-syn"
	case KindICMPEcho:
		return "icmp-echo"
	case KindConnect:
		return "tcp-connect"
	case KindTCPSYNACK:
		return "tcp-synack"
	}
	return "unknown"
}

// Probe is one packet (or one connect) on one flow.
type Probe struct {
	Kind  Kind
	Tuple hash.FiveTuple
	// Repeat numbers the probes on the same tuple, from 0.
	Repeat int
	// Cookie identifies the probe in replies: the TCP sequence number or the
	// ICMP echo sequence number. Set by the engine from the run's secret.
	Cookie uint32
	// TTL limits the probe's IP TTL / hop limit for tracing; 0 means the
	// system default.
	TTL uint8
}

// Outcome is how a probe ended. Every sent probe ends in exactly one.
type Outcome uint8

const (
	Pending Outcome = iota
	// Answered: something came back on the reverse flow (SYN-ACK, RST, an
	// ACK, an echo reply or a completed/refused connect): the path works.
	Answered
	// Unreachable: an ICMP error came back instead.
	Unreachable
	// Timeout: silence for the whole timeout.
	Timeout
	// SendFailed: the local stack refused to send it.
	SendFailed
)

func (o Outcome) String() string {
	switch o {
	case Pending:
		return "pending"
	case Answered:
		return "answered"
	case Unreachable:
		return "unreachable"
	case Timeout:
		return "timeout"
	case SendFailed:
		return "send-failed"
	}
	return "unknown"
}

// Result is a probe with its outcome.
type Result struct {
	Probe
	Outcome Outcome
	Sent    time.Time
	RTT     time.Duration
	// From is who answered: the target, or the router that sent an ICMP error.
	From netip.Addr
	// Detail names the answer: "syn-ack", "rst", "ack", "echo-reply",
	// "icmp 3/1", "connected", "refused", or the send error.
	Detail string
	// ICMPType and ICMPCode describe an ICMP answer (time exceeded while
	// tracing, unreachable otherwise).
	ICMPType, ICMPCode uint8
	// ReplyTTL is the IP TTL (hop limit) the answer arrived with, when known.
	ReplyTTL uint8
	// IPID is the IPv4 identification of the answer; 0 when unknown
	// (IPv6, ping sockets) or when a router's error copied the probe's.
	IPID uint16
	// MPLS lists the labels of an MPLS label stack (RFC 4950) quoted in an
	// ICMP answer, top first.
	MPLS []uint32
	// Stamped are the addresses an echo reply's prespecified timestamp
	// option says were stamped (AliasProber).
	Stamped []netip.Addr
	// Late counts replies that came after the probe had timed out;
	// Duplicates those after it had already been answered.
	Late, Duplicates int
	// Cause says why a SendFailed probe never left the host.
	Cause Cause
}

// Stats counts what the engine saw beyond the per-probe outcomes.
type Stats struct {
	Sent      int // probes that left the host
	Unmatched int // replies that matched no probe of ours
	Malformed int // received bytes that did not parse
	// HalfOpen counts bare ACKs of an earlier SYN on the same flow: the
	// server still holds that connection half-open because its SYN-ACK was
	// lost on the way back. They answer no probe.
	HalfOpen int
	// LocalDrops counts packets the host dropped before we read them (a
	// full socket receive buffer, SO_RXQ_OVFL): replies lost here, not on
	// the path.
	LocalDrops int
	// PeakInFlight is the most probe records held at once: what the
	// engine's memory follows (about rate x timeout).
	PeakInFlight int
	// SendFailures counts the probes that never left, by cause.
	SendFailures map[Cause]SendFailure
}

// SendFailure is how often one cause kept probes from leaving, with the
// first error seen.
type SendFailure struct {
	Count   int
	Example string
}

// Add sums another run's counters into s.
func (s *Stats) Add(o Stats) {
	s.Sent += o.Sent
	s.Unmatched += o.Unmatched
	s.Malformed += o.Malformed
	s.HalfOpen += o.HalfOpen
	s.LocalDrops += o.LocalDrops
	s.PeakInFlight = max(s.PeakInFlight, o.PeakInFlight)
	for c, f := range o.SendFailures {
		s.addFailure(c, f.Count, f.Example)
	}
}

func (s *Stats) addFailure(c Cause, n int, example string) {
	if s.SendFailures == nil {
		s.SendFailures = map[Cause]SendFailure{}
	}
	f := s.SendFailures[c]
	if f.Example == "" {
		f.Example = example
	}
	f.Count += n
	s.SendFailures[c] = f
}

// Cause classifies why the local stack refused a probe.
type Cause string

const (
	// CauseFirewall: EPERM or EACCES on send, which is what a local
	// firewall (an nftables/iptables OUTPUT rule) gives raw sends it drops.
	CauseFirewall Cause = "firewall"
	// CausePortInUse: EADDRINUSE binding the source port (connect mode).
	CausePortInUse Cause = "port-in-use"
	// CauseAddressNotAvailable: EADDRNOTAVAIL, the source address is not
	// this host's.
	CauseAddressNotAvailable Cause = "address-not-available"
	// CauseNoBuffers: ENOBUFS or EAGAIN that outlasted the retries.
	CauseNoBuffers Cause = "no-buffer-space"
	// CauseNoRoute: the host has no route for the probe.
	CauseNoRoute Cause = "no-route"
	// CauseOther: anything else.
	CauseOther Cause = "other"
)

// CauseOf classifies a send (or local connect) error.
func CauseOf(err error) Cause {
	switch {
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return CauseFirewall
	case errors.Is(err, syscall.EADDRINUSE):
		return CausePortInUse
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return CauseAddressNotAvailable
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.EAGAIN):
		return CauseNoBuffers
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return CauseNoRoute
	}
	return CauseOther
}

// Sentinel errors.
var (
	// ErrPermission: the process may not open raw sockets.
	ErrPermission = errors.New("raw sockets need root or CAP_NET_RAW")
	// ErrBadPlan: the plan cannot be run (empty, bad rate or timeout).
	ErrBadPlan = errors.New("invalid probe plan")
	// ErrUnsupported: this system cannot open the sockets asked for (raw
	// mode needs Linux).
	ErrUnsupported = errors.New("raw mode needs Linux")
)

// Observation converts a result for the bucketer.
func (r Result) Observation() hash.Observation {
	o := hash.Observation{Tuple: r.Tuple, RTT: r.RTT, Late: r.Late, Duplicates: r.Duplicates}
	switch r.Outcome {
	case Answered:
		o.Result = hash.Received
	case Unreachable:
		o.Result = hash.Unreachable
	case SendFailed:
		o.Result = hash.NotSent
	default:
		o.Result = hash.Lost
	}
	return o
}
