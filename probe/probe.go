// Package probe sends probes and matches their replies: the raw TCP SYN and
// ICMP echo probers, the unprivileged connect prober, and the paced
// send/receive engine they share.
package probe

import (
	"errors"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Kind is what a probe sends.
type Kind uint8

const (
	KindTCPSYN Kind = iota + 1
	KindICMPEcho
	KindConnect
)

func (k Kind) String() string {
	switch k {
	case KindTCPSYN:
		return "tcp-syn"
	case KindICMPEcho:
		return "icmp-echo"
	case KindConnect:
		return "tcp-connect"
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
	// MPLS lists the labels of an MPLS label stack (RFC 4950) quoted in an
	// ICMP answer, top first.
	MPLS []uint32
	// Late counts replies that came after the probe had timed out;
	// Duplicates those after it had already been answered.
	Late, Duplicates int
}

// Stats counts what the engine saw beyond the per-probe outcomes.
type Stats struct {
	Sent      int
	Unmatched int // replies that matched no probe of ours
	Malformed int // received bytes that did not parse
	// HalfOpen counts bare ACKs of an earlier SYN on the same flow: the
	// server still holds that connection half-open because its SYN-ACK was
	// lost on the way back. They answer no probe.
	HalfOpen int
}

// Sentinel errors.
var (
	// ErrPermission: the process may not open raw sockets.
	ErrPermission = errors.New("raw sockets need root or CAP_NET_RAW")
	// ErrNoRoute: the kernel has no route to the target.
	ErrNoRoute = errors.New("no route to target")
	// ErrBadPlan: the plan cannot be run (empty, bad rate or timeout).
	ErrBadPlan = errors.New("invalid probe plan")
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
