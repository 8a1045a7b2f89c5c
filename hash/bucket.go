package hash

import (
	"cmp"
	"slices"
	"time"
)

// State is the verdict on one flow over its repeats.
type State string

const (
	StateOK    State = "ok"    // every probe answered
	StateFail  State = "fail"  // no probe answered, and luck cannot explain it
	StateFlaky State = "flaky" // some answered, some not, or all lost by plausible luck
	// StateError: no probe of the flow left the host (the local stack
	// refused them all). No evidence about the path, either way.
	StateError State = "error"
)

// Result of one probe as the bucketer sees it.
type Result uint8

const (
	Received    Result = iota + 1 // the path worked
	Unreachable                   // an ICMP error came back
	Lost                          // silence
	NotSent                       // the local stack refused to send
)

// Observation is one probe's outcome on a flow.
type Observation struct {
	Tuple      FiveTuple
	Result     Result
	RTT        time.Duration
	Late       int
	Duplicates int
}

// FlowStats aggregates the observations of one bucket.
type FlowStats struct {
	Tuple       FiveTuple
	Sent        int // probes that left (NotSent excluded)
	Received    int
	Unreachable int
	Lost        int
	SendErrors  int
	Late        int
	Duplicates  int
	RTTMin      time.Duration
	RTTMax      time.Duration
	RTTSum      time.Duration
}

// Judged is a flow's counts with the state ecmpscan's one classification
// rule gives them (see Judge).
type Judged struct {
	FlowStats
	State State
}

// Judge classifies every flow with ClassifyWithLoss against the background
// loss measured on the flows themselves (BackgroundLoss), and returns them
// with that loss. It is the one rule for sweep ports, ICMP identifiers and
// traced flows alike.
func Judge(stats []FlowStats, alpha float64) ([]Judged, float64) {
	states, p := ClassifyAll(stats, alpha)
	out := make([]Judged, len(stats))
	for i := range stats {
		out[i] = Judged{FlowStats: stats[i], State: states[i]}
	}
	return out, p
}

// RTTAvg is the mean RTT of the received probes.
func (s FlowStats) RTTAvg() time.Duration {
	if s.Received == 0 {
		return 0
	}
	return s.RTTSum / time.Duration(s.Received)
}

func (s *FlowStats) add(o Observation) {
	s.Late += o.Late
	s.Duplicates += o.Duplicates
	switch o.Result {
	case NotSent:
		s.SendErrors++
		return
	case Received:
		if s.Received == 0 || o.RTT < s.RTTMin {
			s.RTTMin = o.RTT
		}
		s.RTTMax = max(s.RTTMax, o.RTT)
		s.RTTSum += o.RTT
		s.Received++
	case Unreachable:
		s.Unreachable++
	case Lost:
		s.Lost++
	}
	s.Sent++
}

// Bucketer is the one place that groups probe results: by flow for a sweep,
// by path signature or hash bucket later. The key function picks the grouping.
type Bucketer[K cmp.Ordered] struct {
	key     func(FiveTuple) K
	buckets map[K]*FlowStats
}

// NewBucketer groups observations by key(tuple).
func NewBucketer[K cmp.Ordered](key func(FiveTuple) K) *Bucketer[K] {
	return &Bucketer[K]{key: key, buckets: make(map[K]*FlowStats)}
}

// BySourcePort groups flows by their source port (or ICMP identifier).
func BySourcePort() *Bucketer[uint16] {
	return NewBucketer(func(t FiveTuple) uint16 { return t.SrcPort })
}

// Add folds one observation into its bucket.
func (b *Bucketer[K]) Add(o Observation) { b.bucket(o.Tuple).add(o) }

// AddLate counts a reply that came after its probe had been counted.
func (b *Bucketer[K]) AddLate(t FiveTuple) { b.bucket(t).Late++ }

func (b *Bucketer[K]) bucket(t FiveTuple) *FlowStats {
	k := b.key(t)
	s, ok := b.buckets[k]
	if !ok {
		s = &FlowStats{Tuple: t}
		b.buckets[k] = s
	}
	return s
}

// Buckets returns the aggregates sorted by key.
func (b *Bucketer[K]) Buckets() []FlowStats {
	keys := make([]K, 0, len(b.buckets))
	for k := range b.buckets {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]FlowStats, len(keys))
	for i, k := range keys {
		out[i] = *b.buckets[k]
	}
	return out
}

// Total sums every bucket into one.
func Total(stats []FlowStats) FlowStats {
	var t FlowStats
	for _, s := range stats {
		if t.Received == 0 || (s.Received > 0 && s.RTTMin < t.RTTMin) {
			t.RTTMin = s.RTTMin
		}
		t.Sent += s.Sent
		t.Received += s.Received
		t.Unreachable += s.Unreachable
		t.Lost += s.Lost
		t.SendErrors += s.SendErrors
		t.Late += s.Late
		t.Duplicates += s.Duplicates
		t.RTTMax = max(t.RTTMax, s.RTTMax)
		t.RTTSum += s.RTTSum
	}
	return t
}
