package report

import (
	"net/netip"
	"slices"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// TraceHop is what one TTL of one flow's trace saw.
type TraceHop struct {
	TTL int
	// Addr answered at this TTL: a router's ICMP time-exceeded (or
	// unreachable), or the destination itself when Reached. Invalid when no
	// probe at this TTL got an answer ("*"): unknown, never loss by itself.
	Addr netip.Addr
	// Others lists further addresses that answered at this TTL for the same
	// flow (a router answering from several addresses, or per-packet
	// balancing); usually empty.
	Others   []netip.Addr
	RTT      time.Duration // of the first answer
	Probes   int           // TTL-limited probes sent at this TTL
	Answers  int           // of which answered
	Reached  bool          // the destination answered (SYN-ACK/RST) at this TTL
	ICMPType uint8         // of the answer, when it was ICMP
	ICMPCode uint8
	MPLS     []uint32 // MPLS labels (top first) quoted in an RFC 4950 extension
	// IDs are the IPv4 identifications of the routers' answers at this
	// TTL, in arrival order, for telling one router's addresses by a
	// counter they share (alias.go); empty for IPv6.
	IDs []IDSample
}

// IDSample is one router answer's IPv4 identification.
type IDSample struct {
	Addr netip.Addr
	At   time.Time // when it arrived
	ID   uint16
	TTL  uint8 // the TTL it arrived with
}

// FlowTrace is one flow (source port): its end-to-end result from plain
// probes, and its hop-by-hop forward path from TTL-limited probes.
type FlowTrace struct {
	Sport uint16
	// End-to-end result of the flow's untruncated probes.
	State          hash.State
	Sent, Received int
	// Hops[i] is TTL i+1, up to the TTL that reached the destination or
	// the largest TTL probed.
	Hops []TraceHop
	// ReachedTTL is the TTL at which the destination answered a
	// TTL-limited probe; 0 if none did.
	ReachedTTL int
	// ReturnHops is the flow's return path as the target's responder
	// traced it (TTL 1 is the first router from the target; Reached: the
	// client answered); nil when it was not traced back.
	ReturnHops []TraceHop
}

// Signature is the forward path as a bucket key: the answering addresses
// TTL by TTL before the destination, "*" for silence.
func (f FlowTrace) Signature() string {
	sig := ""
	for _, h := range f.Hops {
		if h.Reached {
			break
		}
		if sig != "" {
			sig += " "
		}
		if h.Addr.IsValid() {
			sig += h.Addr.String()
		} else {
			sig += "*"
		}
	}
	return sig
}

// PathBucket is a group of flows with the same forward path signature.
type PathBucket struct {
	Signature string
	Hops      []netip.Addr // by TTL; invalid = "*"
	Ports     []uint16
	OK        int
	Fail      int
	Flaky     int
	// Loss of the bucket's end-to-end probes with a 95% Wilson interval.
	Sent, Received          int
	Loss, LossLow, LossHigh float64
}

// Direction is where the diagnosis puts the fault.
type Direction string

const (
	DirectionForward Direction = "forward"
	DirectionReturn  Direction = "return"
	DirectionNone    Direction = "none"
	DirectionUnknown Direction = "unknown"
)

// Suspect is where the evidence points, most likely first. For a link,
// Addr is the last hop that answered and Next an address of the next
// router; for a hop, Next is invalid. Addr and Next are invalid where no
// probe could see the place (an unseen member, a return member).
type Suspect struct {
	// Direction is the direction the suspect fails flows in.
	Direction Direction
	// Kind is "hop", "link", "member" (a forward member nobody sees,
	// behind the routers in Behind), "return-member" (a member of the
	// return stage at TTL), "return-link" (a link toward the client into
	// one) or "return-path" (somewhere on the way back).
	Kind   string
	Addr   netip.Addr
	Next   netip.Addr
	Behind []netip.Addr
	// FirstHop is the gateway, from the routing table, of the end the
	// suspect's path starts at (this host's for a forward suspect, the
	// target's for a return one traced back), when the suspect is behind
	// a first hop that answered no probe; invalid otherwise. No probe saw
	// it: it names where to look.
	FirstHop netip.Addr
	TTL      int
	Evidence string
	// Explains counts the failing flows it explains; Score is that minus
	// the ones it contradicts.
	Explains int
	Score    int
}

// Diagnosis is the verdict of a trace.
type Diagnosis struct {
	Direction Direction
	Suspects  []Suspect // most likely first
	// Hypotheses are every explanation scored, best first (see
	// hypothesis.go); Suspects are their places.
	Hypotheses []Hypothesis
	// Margin is the log-likelihood ratio of the best hypothesis over the
	// best one that points elsewhere (+Inf when there is none).
	Margin float64
	// Separate names the measurement that would tell the best hypothesis
	// from its rival, when the margin is too small to decide.
	Separate string
	// Look is where more traced flows would test the verdict, or its
	// closest forward rival (look.go); nil when nothing needs one.
	Look *Look
	// SharedIPID are groups of addresses whose answers count up from one
	// IP ID counter: each one router's (alias.go), and taken so.
	SharedIPID [][]netip.Addr
	// Return is what the responder's return-path traces showed (trace
	// --responder); nil when none were traced.
	Return *ReturnPaths
	Text   string
}

// Retried is the second look at hops whose routers rate-limit their ICMP
// errors (internal/retry): the TTLs RateLimitedTTLs finds, their silent hops
// after the first pass, and what probing them again, in rounds a second
// apart, brought.
type Retried struct {
	TTLs                    []int
	Holes                   int
	Rounds, Probes, Answers int
	// Longer: the diagnosis could not decide when the patience was spent,
	// so the first pass's holes were probed again for as long again.
	Longer bool
}

// Trace is everything a renderer needs about one trace run.
type Trace struct {
	Host         string
	Target       netip.AddrPort
	Source       netip.Addr
	Mode         string
	MaxTTL       int
	ProbesPerHop int
	Count        int // end-to-end probes per flow
	Started      time.Time
	Duration     time.Duration
	Interrupted  bool
	Flows        []FlowTrace // sorted by source port
	Buckets      []PathBucket
	Diagnosis    Diagnosis
	// NotProbed lists flows none of whose end-to-end probes left the
	// host: no evidence, so they are not traced or diagnosed.
	NotProbed []uint16
	// TwoEnded is what the target's responder saw of the end-to-end
	// probes (trace --responder); nil otherwise.
	TwoEnded *TwoEnded
	// Retried is the second look at rate-limited hops; nil when there
	// was none.
	Retried *Retried
	// Gateway is the first hop this host's routing table sends the traced
	// flows to; invalid when on-link, not looked up, or when the flows'
	// answers differ (a multipath route on the host).
	Gateway netip.Addr
	// Untraced counts the flows classified end to end but not traced hop
	// by hop, by state: the traced ones were picked from them (failing
	// first), and the diagnosis weighs them back (Sample).
	Untraced Untraced
	// Looked is the second look the trace took (look.go); nil when none.
	Looked *Looked
	// Aliases is the alias test the trace ran where its diagnosis could
	// not decide (timestamp_alias.go), and RateLimits the rate-limit one
	// where it still could not (ratelimit_alias.go); nil when none ran.
	Aliases    *AliasTest
	RateLimits *RateLimitTest
}

// Untraced counts flows classified end to end and left untraced, by state.
type Untraced struct{ OK, Fail, Flaky int }

// Sample is how the traced flows stand for every classified one: each
// traced failing flow for Fail of them, each healthy one for OK.
func (t Trace) Sample() Sample {
	s := WeighBack(t.Flows, t.Untraced, t.Looked)
	if t.Aliases != nil {
		s.OneRouter = t.Aliases.Groups
	}
	if t.RateLimits != nil {
		s.OneRouter = append(slices.Clone(s.OneRouter), t.RateLimits.Groups...)
	}
	return s
}

// WeighBack is the Sample of traced flows picked by state from theirs
// and the untraced ones: 1 for a state every flow of which was traced.
// After a second look (looked non-nil) the flows that crossed its place
// are weighed by their own untraced ones, the others by the rest
// (Looked.untracedStrata); a place every flow crosses is no stratum. The
// flows the look traced are named in the Sample either way (Looked).
func WeighBack(traced []FlowTrace, u Untraced, looked *Looked) Sample {
	later := looked.ports()
	if looked != nil && looked.everywhere(traced, u) {
		looked = nil
	}
	var in, out []FlowTrace
	for _, f := range traced {
		if looked.crossed(f) {
			in = append(in, f)
		} else {
			out = append(out, f)
		}
	}
	inN, outN := stateCount(in), stateCount(out)
	inU, outU := looked.untracedStrata(traced, u)
	// Untraced flows of a state no traced flow of their stratum has are
	// weighed by the other's.
	all := inU.plus(outU)
	if inN.Fail == 0 {
		inU.fail, outU.fail = 0, all.fail
	} else if outN.Fail == 0 {
		inU.fail, outU.fail = all.fail, 0
	}
	if inN.OK == 0 {
		inU.ok, outU.ok = 0, all.ok
	} else if outN.OK == 0 {
		inU.ok, outU.ok = all.ok, 0
	}
	s := Sample{Looked: later}
	s.Fail, s.OK = weighStratum(outN, outU)
	fail, ok := weighStratum(inN, inU)
	for _, f := range in {
		if s.Weight == nil {
			s.Weight = map[uint16]float64{}
		}
		switch f.State {
		case hash.StateFail:
			s.Weight[f.Sport] = fail
		case hash.StateOK:
			s.Weight[f.Sport] = ok
		}
	}
	return s
}

// ExitCode is the documented exit code of a finished trace: 1 when some
// flows fail, 4 when all do, 3 when none could be probed, 0 otherwise.
func (t Trace) ExitCode() int {
	fail := 0
	for _, f := range t.Flows {
		if f.State == hash.StateFail {
			fail++
		}
	}
	switch {
	case len(t.Flows) == 0 && len(t.NotProbed) > 0:
		return 3
	case fail > 0 && fail == len(t.Flows):
		return 4
	case fail > 0:
		return 1
	}
	return 0
}
