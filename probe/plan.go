package probe

import (
	"math/rand/v2"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Source lays out a run's probes in send order. Probe i is computed when it
// is sent, so a run of a million probes costs no more memory than its flows.
type Source interface {
	Len() int
	// At is probe i, 0 <= i < Len(), without its cookie.
	At(i int) Probe
	// EchoIndex is the index of the echo probe on tuple t with the given
	// repeat: an echo reply's 16-bit sequence number carries only the
	// repeat. false when there is none.
	EchoIndex(t hash.FiveTuple, repeat int) (int, bool)
}

// MaxRepeats is the most probes per flow a Source may hold: an echo
// sequence number has 16 bits.
const MaxRepeats = 1 << 16

// Rounds is a sweep's send order: count rounds over the flows. Every round
// uses the same shuffled order, so two probes on one flow are always a whole
// round apart: the farthest apart they can be, which lets server state
// (SYN_RECV, TIME_WAIT) from the previous probe clear. Echo probes are
// spread evenly through the TCP probes rather than bunched.
type Rounds struct {
	tcp, echo []hash.FiveTuple // one round, shuffled
	tcpKind   Kind
	count     int
	echoPos   map[hash.FiveTuple]int
}

var _ Source = (*Rounds)(nil)

// NewRounds shuffles the flows once and lays out count rounds of them.
func NewRounds(tcp []hash.FiveTuple, tcpKind Kind, echo []hash.FiveTuple, count int, rng *rand.Rand) *Rounds {
	r := &Rounds{tcp: shuffled(tcp, rng), echo: shuffled(echo, rng), tcpKind: tcpKind, count: min(count, MaxRepeats)}
	r.echoPos = make(map[hash.FiveTuple]int, len(r.echo))
	for i, t := range r.echo {
		r.echoPos[t] = i
	}
	return r
}

func (r *Rounds) round() int { return len(r.tcp) + len(r.echo) }

// Len is the number of probes in all rounds.
func (r *Rounds) Len() int { return r.round() * r.count }

// At interleaves the kinds Bresenham-style: slot k of a round of n holds an
// echo probe when floor((k+1)E/n) > floor(kE/n) for E echo flows.
func (r *Rounds) At(i int) Probe {
	n, e := r.round(), len(r.echo)
	rep, k := i/n, i%n
	before, through := k*e/n, (k+1)*e/n
	if through > before {
		return Probe{Kind: KindICMPEcho, Tuple: r.echo[before], Repeat: rep}
	}
	return Probe{Kind: r.tcpKind, Tuple: r.tcp[k-before], Repeat: rep}
}

// EchoIndex inverts At for echo probes: echo flow j sits in the smallest
// slot k with floor((k+1)E/n) = j+1.
func (r *Rounds) EchoIndex(t hash.FiveTuple, repeat int) (int, bool) {
	j, ok := r.echoPos[t]
	if !ok || repeat < 0 || repeat >= r.count {
		return 0, false
	}
	n, e := r.round(), len(r.echo)
	k := ((j+1)*n+e-1)/e - 1
	return repeat*n + k, true
}

func shuffled(ts []hash.FiveTuple, rng *rand.Rand) []hash.FiveTuple {
	out := append([]hash.FiveTuple(nil), ts...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TraceRounds lays out TTL-limited probes: every flow at every TTL from 1 to
// maxTTL, perHop times, the five-tuple fixed per flow (Paris-style; only the
// cookie in the sequence number changes). Consecutive probes go to
// different flows. Each TTL of each repeat takes the flows in an order of
// its own: a router that rate-limits its answers answers the first few
// probes it gets, and in one order for all TTLs those would be the same
// flows at every hop, leaving others silent at every hop, as if they died
// at the first; and in one order for both repeats, the same flows would
// get both answers, hiding that the router ran out.
//
// An order is a step through the once-shuffled flows, k -> (a k + b) mod n
// with a prime to n, so the trace holds two numbers per TTL and repeat,
// not one per probe.
type TraceRounds struct {
	flows          []hash.FiveTuple
	steps          []orderStep // by repeat x maxTTL + TTL-1
	maxTTL, perHop int
	kind           Kind
}

// orderStep is one order of the flows: the k-th is flows[(a k + b) mod n].
type orderStep struct{ a, b int }

var _ Source = (*TraceRounds)(nil)

// NewTraceRounds shuffles the flows once and draws each TTL's order of
// them, for each repeat.
func NewTraceRounds(flows []hash.FiveTuple, maxTTL, perHop int, rng *rand.Rand) *TraceRounds {
	t := &TraceRounds{flows: shuffled(flows, rng), maxTTL: maxTTL, perHop: min(perHop, MaxRepeats), kind: KindTCPSYN}
	n := len(flows)
	for i := range t.perHop * maxTTL {
		st := orderStep{a: 1}
		if n > 1 {
			st = orderStep{a: 1 + rng.IntN(n-1), b: rng.IntN(n)}
			for gcd(st.a, n) != 1 {
				st.a = 1 + rng.IntN(n-1)
			}
			// Not the flow the order before ended with.
			if i > 0 && st.b == t.steps[i-1].at(n-1, n) {
				st.b = (st.b + 1) % n
			}
		}
		t.steps = append(t.steps, st)
	}
	return t
}

func (o orderStep) at(k, n int) int { return (o.a*k + o.b) % n }

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// NewReverseRounds lays out reverse probes the same way: SYN-ACKs on the
// answers' tuples (server to client), for a responder's return-path
// traces.
func NewReverseRounds(flows []hash.FiveTuple, maxTTL, perHop int, rng *rand.Rand) *TraceRounds {
	t := NewTraceRounds(flows, maxTTL, perHop, rng)
	t.kind = KindTCPSYNACK
	return t
}

// Len is flows x TTLs x probes per hop.
func (t *TraceRounds) Len() int { return len(t.flows) * t.maxTTL * t.perHop }

// At takes the flows of a TTL of a repeat in its order.
func (t *TraceRounds) At(i int) Probe {
	n := len(t.flows)
	perRep := n * t.maxTTL
	rep, rest := i/perRep, i%perRep
	ttl, k := rest/n+1, rest%n
	return Probe{Kind: t.kind, Tuple: t.flows[t.steps[rep*t.maxTTL+ttl-1].at(k, n)], Repeat: rep, TTL: uint8(ttl)}
}

// EchoIndex: a trace sends no echo probes.
func (t *TraceRounds) EchoIndex(hash.FiveTuple, int) (int, bool) { return 0, false }

// List is a Source over probes held in memory, for tests and tiny runs.
type List []Probe

var _ Source = List(nil)

func (l List) Len() int       { return len(l) }
func (l List) At(i int) Probe { return l[i] }

// EchoIndex scans the list; fine for the small lists it is meant for.
func (l List) EchoIndex(t hash.FiveTuple, repeat int) (int, bool) {
	for i, p := range l {
		if p.Kind == KindICMPEcho && p.Tuple == t && p.Repeat == repeat {
			return i, true
		}
	}
	return 0, false
}

// Tuples lists the flows of a sweep: one TCP tuple per source port.
func Tuples(src netip.Addr, dst netip.AddrPort, sports []uint16) []hash.FiveTuple {
	out := make([]hash.FiveTuple, len(sports))
	for i, sp := range sports {
		out[i] = hash.FiveTuple{Src: src, Dst: dst.Addr(), Proto: hash.ProtoTCP, SrcPort: sp, DstPort: dst.Port()}
	}
	return out
}

// EchoTuples lists n echo flows with consecutive identifiers from first.
func EchoTuples(src, dst netip.Addr, first uint16, n int) []hash.FiveTuple {
	out := make([]hash.FiveTuple, n)
	for i := range out {
		out[i] = echoTuple(src, dst, first+uint16(i))
	}
	return out
}
