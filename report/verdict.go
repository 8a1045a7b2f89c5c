package report

import (
	"math"
	"slices"
	"strconv"
)

// decisive is the log-likelihood ratio the best hypothesis needs over one
// that points elsewhere to be called: 10 to 1, "strong" on Jeffreys' scale.
// Below it the diagnosis says what would separate the two, and the
// direction is unknown when they disagree on it.
var decisive = math.Log(10)

// decisiveWhereRateLimited is the ratio a direction needs where routers
// rate-limit their errors: 100 to 1, "decisive" on Jeffreys' scale: the
// likelihood overstates the evidence there. Measured on the recorded
// traces: where routers rate-limit, directions called at 10 to 100 to 1
// were wrong about half the time; without a rate limit, about one time in
// eight (README, "How sure is a verdict?"). Why is not known; measured,
// it is not that their silences come in bursts.
var decisiveWhereRateLimited = math.Log(100)

// maxSuspects bounds the suspects listed.
const maxSuspects = 8

// decision is what decide reads off the ranked hypotheses.
type decision struct {
	direction Direction
	// margin is the log-likelihood ratio of the best over rival.
	margin float64
	// separate names the measurement that tells the best from rival,
	// when the margin is too small to decide.
	separate string
	// rival is what margin is over: the best hypothesis of the other
	// direction when it is too close, else the nearest that answers
	// differently (of the other direction, or pointing elsewhere); nil
	// when none does. A pair's own return half alone is of the other
	// direction: a link dead both ways is weighed against the return
	// fault alone it must beat, not the forward fault alone far behind.
	rival *Hypothesis
}

// decide reads the direction off the ranked hypotheses: the best one's,
// unless one of the other direction comes within need (decisive, or
// decisiveWhereRateLimited). Where the direction is sure, a rival in the
// same direction that points elsewhere within the decisive ratio leaves
// the place open: separate names what would tell them apart.
func decide(hs []Hypothesis, need float64) decision {
	if len(hs) == 0 || hs[0].Score <= 0 {
		return decision{direction: DirectionUnknown}
	}
	best := hs[0]
	v := decision{direction: best.Direction, margin: math.Inf(1)}
	other := slices.IndexFunc(hs, func(h Hypothesis) bool { return h.Direction != best.Direction })
	elsewhere := slices.IndexFunc(hs, func(h Hypothesis) bool { return !compatible(best, h) })
	near := other
	if near < 0 || (elsewhere >= 0 && elsewhere < near) {
		near = elsewhere
	}
	switch {
	case other >= 0 && best.Score-hs[other].Score < need:
		near, v.direction, v.separate = other, DirectionUnknown, separateDirections
	case elsewhere >= 0 && best.Score-hs[elsewhere].Score < decisive:
		near, v.separate = elsewhere, separatePlaces(best, hs[elsewhere])
	}
	if near >= 0 {
		v.margin, v.rival = best.Score-hs[near].Score, &hs[near]
	}
	return v
}

// directionNeed is the ratio the direction needs on these flows.
func (a *analysis) directionNeed() float64 {
	if len(a.rateLimited) > 0 {
		return decisiveWhereRateLimited
	}
	return decisive
}

// compatible reports whether two hypotheses point at the same place, or one
// is the other plus a second fault (which is then uncertain, not the
// verdict).
func compatible(a, b Hypothesis) bool {
	parts := func(h Hypothesis) []string {
		if h.And != nil {
			return []string{place(h), place(*h.And)}
		}
		return []string{place(h)}
	}
	for _, x := range parts(a) {
		for _, y := range parts(b) {
			if x == y {
				return true
			}
		}
	}
	return false
}

// place is where a hypothesis points, for telling rivals apart: a return
// fault is one place (the return path is not observed), a forward one its
// router or, for an unseen member, its TTL.
func place(h Hypothesis) string {
	if h.Direction == DirectionReturn {
		return "return"
	}
	switch {
	case h.Addr.IsValid():
		return "forward " + h.Addr.String()
	case h.Kind == HypMember:
		return "forward ttl " + strconv.Itoa(h.TTL)
	}
	return "forward first hops" // behind no answering router
}

const separateDirections = "a two-ended run (trace --responder, with ecmpscan responder on the target) decides it: it shows whether the failing flows' SYNs arrive; " +
	"without a responder, trace from the server toward the client with a failing flow's tuple reversed"

func separatePlaces(a, b Hypothesis) string {
	return "more flows through " + placeName(a) + " and " + placeName(b) +
		" (a wider --sport range) and more probes per hop (--probes) would separate them"
}

// suspectsOf turns the hypotheses that beat chance into suspects, best
// first, with the evidence the older per-flow reading wrote where it names
// the same place; then the forward half of a tentative pair (see
// analysis.tentative), when there is one, as a place to look.
func (a *analysis) suspectsOf(hs []Hypothesis, infos []suspectInfo, tentative *Hypothesis) []Suspect {
	out := []Suspect{}
	seen := map[string]bool{}
	add := func(h Hypothesis, evidence string) {
		s := Suspect{Direction: h.Direction, Kind: suspectKindOf(h), Addr: h.Addr, Next: h.Next, Behind: h.Behind,
			TTL: h.TTL, Explains: h.Explains, Score: h.Explains - h.Contradicts}
		key := string(s.Direction) + " " + s.Kind + " " + s.Addr.String() + " " + s.Next.String() + " " + strconv.Itoa(s.TTL)
		if seen[key] || len(out) >= maxSuspects {
			return
		}
		seen[key] = true
		s.Evidence = evidence
		out = append(out, s)
	}
	for _, h := range hs {
		// The best, and those the data cannot rule out against it.
		if h.Score <= 0 || hs[0].Score-h.Score >= decisive {
			break
		}
		add(h, evidenceFor(h, infos))
		if h.And != nil {
			add(*h.And, evidenceFor(*h.And, infos))
		}
	}
	if tentative != nil {
		h := *tentative
		h.And, h.Contradicts = nil, 0
		add(h, hypothesisEvidence(h)+"; with the return fault this fits the failing flows better, not by 10 to 1 (a link dead both ways, or two faults)")
	}
	return out
}

// namedFirst puts first, among the hypotheses that point where the best one
// does and that the data cannot tell from it, the one that names the most:
// a link over a hop, then the shallowest. The same routers' flows die
// there either way; the link is what an engineer checks.
func namedFirst(hs []Hypothesis) []Hypothesis {
	if len(hs) < 2 {
		return hs
	}
	out := slices.Clone(hs)
	best := 0
	for i, h := range out[1:] {
		if out[0].Score-h.Score >= decisive {
			break
		}
		if place(h) != place(out[0]) || (h.And == nil) != (out[0].And == nil) ||
			(h.And != nil && place(*h.And) != place(*out[0].And)) {
			continue
		}
		b := out[best]
		// Return hypotheses are not reordered: which stage of an
		// unobserved path is no better named by a shallower one.
		if h.Direction == DirectionReturn {
			continue
		}
		if (h.Next.IsValid() && !b.Next.IsValid()) || (h.Next.IsValid() == b.Next.IsValid() && h.TTL < b.TTL) {
			best = i + 1
		}
	}
	out[0], out[best] = out[best], out[0]
	return out
}

func suspectKindOf(h Hypothesis) string {
	switch h.Kind {
	case HypLink:
		return "link"
	case HypMember:
		return "member"
	case HypReturnMember, HypReturnLink, HypReturnPath:
		return string(h.Kind)
	case HypHop:
		if h.Next.IsValid() {
			return "link" // a loop between Addr and Next
		}
	}
	return "hop"
}

// evidenceFor is the older reading's evidence for the same place, if any.
func evidenceFor(h Hypothesis, infos []suspectInfo) string {
	if h.Direction == DirectionForward && h.Addr.IsValid() {
		for _, s := range infos {
			if s.Addr == h.Addr && s.Next == h.Next {
				return s.Evidence
			}
		}
		for _, s := range infos {
			if s.Addr == h.Addr && !h.Next.IsValid() {
				return s.Evidence
			}
		}
	}
	return hypothesisEvidence(h)
}

// placeName is a short name of where a hypothesis points.
func placeName(h Hypothesis) string {
	switch {
	case h.Direction == DirectionReturn && h.Kind == HypReturnMember:
		return "the return stage at TTL " + strconv.Itoa(h.TTL)
	case h.Direction == DirectionReturn && h.Kind == HypReturnLink:
		return "a return link into the stage at TTL " + strconv.Itoa(h.TTL)
	case h.Direction == DirectionReturn:
		return "the return path"
	case h.Kind == HypMember:
		return "the unseen member at TTL " + strconv.Itoa(h.TTL) + " behind " + behindText(h)
	case h.Next.IsValid():
		return h.Addr.String() + " -> " + h.Next.String()
	case h.Addr.IsValid():
		return "the hop after " + h.Addr.String()
	}
	return "the first hop"
}
