package responder

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/ecmpscan/ecmpscan/report"
)

// Reverse traces: the responder sends TTL-limited SYN-ACKs on the exact
// reversed tuple of some of a run's flows (server:port -> client:sport), so
// every router hashes them like the flow's own answers and a device that
// drops only SYN-ACKs drops them too. The routers' time-exceededs come back
// to the responder; the client's RST says a probe got all the way.

// Bounds of one reverse trace: at most MaxReverseFlows x MaxReverseTTL x
// MaxReversePerHop probes, so its memory and its traffic are bounded.
const (
	MaxReverseFlows  = 64
	MaxReverseTTL    = 32
	MaxReversePerHop = 3
	// MaxReversePatienceMS bounds how long the hops of routers that
	// rate-limit their errors are probed again (internal/retry), at most
	// as many probes again as the first pass sent.
	MaxReversePatienceMS = 10000
	// DefaultProbeRate caps reverse probes per second, as conservative as
	// sweep's own default.
	DefaultProbeRate = 500
)

// ReverseRequest asks for the return paths of some of a run's flows.
type ReverseRequest struct {
	Run string `json:"run"`
	// Sports are registered source ports of the run: the probes go to
	// the run's client on exactly these ports, from the run's target.
	Sports []uint16 `json:"sports"`
	MaxTTL int      `json:"max_ttl"` // 1-32
	PerHop int      `json:"per_hop"` // probes per TTL, 1-3
	// Rate is probes per second; 0 or more than the responder's cap
	// takes the cap.
	Rate float64 `json:"rate"`
	// TimeoutMS is how long each probe's answers are awaited (100-5000).
	TimeoutMS int64 `json:"timeout_ms"`
	// PatienceMS is how long the silent hops of routers that rate-limit
	// their errors are probed again, a round a second (0-10000; 0: not).
	PatienceMS int64 `json:"patience_ms,omitempty"`
}

// ReverseStarted answers a ReverseRequest.
type ReverseStarted struct {
	Run    string  `json:"run"`
	Probes int     `json:"probes"`
	Rate   float64 `json:"rate"`
}

// The states of a reverse trace.
const (
	ReverseRunning = "running"
	ReverseDone    = "done"
	ReverseFailed  = "failed"
)

// ReturnTraces is a run's reverse trace as far as it got.
type ReturnTraces struct {
	State string       `json:"state"`
	Error string       `json:"error,omitempty"`
	Flows []ReturnFlow `json:"flows"`
	// Retried is what probing the rate-limited hops again brought, once
	// done (ReverseRequest.PatienceMS).
	Retried *ReverseRetried `json:"retried,omitempty"`
	// Gateway is the first hop the target's routing table sends the
	// traced flows' answers to (route.Common); empty when unknown.
	Gateway string `json:"gateway,omitempty"`
}

// FirstHop reads Gateway back: invalid when empty, ErrMalformed when it is
// not an address.
func (t ReturnTraces) FirstHop() (netip.Addr, error) {
	if t.Gateway == "" {
		return netip.Addr{}, nil
	}
	gw, err := netip.ParseAddr(t.Gateway)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: gateway %q", ErrMalformed, t.Gateway)
	}
	return gw, nil
}

// ReverseRetried is report.Retried on the wire.
type ReverseRetried struct {
	TTLs    []int `json:"ttls"`
	Holes   int   `json:"holes"`
	Rounds  int   `json:"rounds"`
	Probes  int   `json:"probes"`
	Answers int   `json:"answers"`
}

// Retried reads it back, within the bounds of one reverse trace.
func (r ReverseRetried) Retried() (report.Retried, error) {
	bound := MaxReverseFlows * MaxReverseTTL * MaxReversePerHop
	bad := len(r.TTLs) > MaxReverseTTL || r.Holes < 0 || r.Holes > MaxReverseFlows*MaxReverseTTL || r.Rounds < 0 ||
		r.Rounds > MaxReversePatienceMS/1000+1 || r.Probes < 0 || r.Probes > bound || r.Answers < 0 || r.Answers > r.Probes
	for _, t := range r.TTLs {
		bad = bad || t < 1 || t > MaxReverseTTL
	}
	if bad {
		return report.Retried{}, fmt.Errorf("%w: retried %+v out of bounds", ErrMalformed, r)
	}
	return report.Retried{TTLs: slices.Clone(r.TTLs), Holes: r.Holes, Rounds: r.Rounds, Probes: r.Probes, Answers: r.Answers}, nil
}

// ReturnFlow is one flow's return path, TTL by TTL from the responder.
type ReturnFlow struct {
	Sport uint16      `json:"sport"`
	Hops  []ReturnHop `json:"hops"`
}

// ReturnHop is report.TraceHop on the wire.
type ReturnHop struct {
	TTL      int      `json:"ttl"`
	Addr     string   `json:"addr,omitempty"`
	Others   []string `json:"others,omitempty"`
	RTTUS    int64    `json:"rtt_us,omitempty"`
	Probes   int      `json:"probes"`
	Answers  int      `json:"answers"`
	Reached  bool     `json:"reached,omitempty"` // the client answered (RST)
	ICMPType uint8    `json:"icmp_type,omitempty"`
	ICMPCode uint8    `json:"icmp_code,omitempty"`
	MPLS     []uint32 `json:"mpls,omitempty"`
}

// DecodeReverse parses and checks a ReverseRequest's shape and bounds (the
// server checks that the run and its ports are the peer's).
func DecodeReverse(b []byte) (ReverseRequest, error) {
	var r ReverseRequest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: reverse: %v", ErrMalformed, err)
	}
	switch {
	case !isHex(r.Run, 32):
		return r, fmt.Errorf("%w: reverse needs a run id", ErrMalformed)
	case len(r.Sports) == 0:
		return r, fmt.Errorf("%w: reverse needs source ports", ErrMalformed)
	case len(r.Sports) > MaxReverseFlows:
		return r, fmt.Errorf("%w: at most %d flows are traced back", ErrScope, MaxReverseFlows)
	case r.MaxTTL < 1 || r.MaxTTL > MaxReverseTTL:
		return r, fmt.Errorf("%w: max_ttl must be 1-%d", ErrScope, MaxReverseTTL)
	case r.PerHop < 1 || r.PerHop > MaxReversePerHop:
		return r, fmt.Errorf("%w: per_hop must be 1-%d", ErrScope, MaxReversePerHop)
	case !(r.Rate >= 0 && r.Rate < 1e9):
		return r, fmt.Errorf("%w: rate must be a non-negative number", ErrMalformed)
	case r.TimeoutMS < 100 || r.TimeoutMS > 5000:
		return r, fmt.Errorf("%w: timeout_ms must be 100-5000", ErrScope)
	case r.PatienceMS < 0 || r.PatienceMS > MaxReversePatienceMS:
		return r, fmt.Errorf("%w: patience_ms must be 0-%d", ErrScope, MaxReversePatienceMS)
	}
	seen := map[uint16]bool{}
	for _, p := range r.Sports {
		if p == 0 || seen[p] {
			return r, fmt.Errorf("%w: source port %d is zero or repeated", ErrMalformed, p)
		}
		seen[p] = true
	}
	return r, nil
}

// WireHops writes a flow's hops for the wire.
func WireHops(hs []report.TraceHop) []ReturnHop {
	out := make([]ReturnHop, 0, len(hs))
	for _, h := range hs {
		w := ReturnHop{TTL: h.TTL, RTTUS: h.RTT.Microseconds(), Probes: h.Probes, Answers: h.Answers,
			Reached: h.Reached, ICMPType: h.ICMPType, ICMPCode: h.ICMPCode, MPLS: h.MPLS}
		if h.Addr.IsValid() {
			w.Addr = h.Addr.String()
		}
		for _, o := range h.Others {
			w.Others = append(w.Others, o.String())
		}
		out = append(out, w)
	}
	return out
}

// TraceHops reads a flow's return hops back, refusing what no responder
// writes: TTLs out of order or range, addresses that do not parse, counts
// that do not add up.
func (f ReturnFlow) TraceHops() ([]report.TraceHop, error) {
	if len(f.Hops) > MaxReverseTTL {
		return nil, fmt.Errorf("%w: %d return hops", ErrMalformed, len(f.Hops))
	}
	out := make([]report.TraceHop, 0, len(f.Hops))
	for i, w := range f.Hops {
		if w.TTL != i+1 || w.Probes < 0 || w.Answers < 0 || w.Answers > w.Probes || w.RTTUS < 0 || len(w.Others) > 64 || len(w.MPLS) > 16 {
			return nil, fmt.Errorf("%w: return hop %d of flow %d", ErrMalformed, i+1, f.Sport)
		}
		h := report.TraceHop{TTL: w.TTL, RTT: time.Duration(w.RTTUS) * time.Microsecond, Probes: w.Probes, Answers: w.Answers,
			Reached: w.Reached, ICMPType: w.ICMPType, ICMPCode: w.ICMPCode, MPLS: w.MPLS}
		var err error
		if w.Addr != "" {
			if h.Addr, err = parseHopAddr(w.Addr); err != nil {
				return nil, err
			}
		} else if w.Reached || len(w.Others) > 0 {
			return nil, fmt.Errorf("%w: return hop %d of flow %d answered from no address", ErrMalformed, i+1, f.Sport)
		}
		for _, o := range w.Others {
			a, err := parseHopAddr(o)
			if err != nil {
				return nil, err
			}
			h.Others = append(h.Others, a)
		}
		out = append(out, h)
		if h.Reached {
			if i != len(f.Hops)-1 {
				return nil, fmt.Errorf("%w: return hops of flow %d go on past the client", ErrMalformed, f.Sport)
			}
		}
	}
	return out, nil
}

func parseHopAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%w: hop address %q", ErrMalformed, s)
	}
	return a, nil
}
