package hash

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// DefaultMaxRepeats caps RepeatsForLoss when the caller gives no cap.
const DefaultMaxRepeats = 10

// PortsForConfidence is the number of source ports to sweep so that, if
// one member of an ECMP group up to maxWidth members wide is bad, at least
// one port hashes to it with probability conf: each port misses it with
// probability at most 1-1/maxWidth, so n ports all miss it with
// (1-1/maxWidth)^n <= 1-conf, n = ceil(ln(1-conf) / ln(1-1/maxWidth)).
// 72 ports for 16 members at 99%. It assumes the hash spreads ports evenly
// and independently over the members; k bad members are found sooner.
func PortsForConfidence(conf float64, maxWidth int) (int, error) {
	if !(conf > 0 && conf < 1) {
		return 0, fmt.Errorf("confidence %v is not between 0 and 1 (exclusive)", conf)
	}
	if maxWidth < 2 {
		return 0, fmt.Errorf("ECMP width %d is less than 2: there is no group to search", maxWidth)
	}
	n := math.Log1p(-conf) / math.Log1p(-1/float64(maxWidth))
	// The slack keeps float noise from rounding an exact integer up.
	return max(int(math.Ceil(n-1e-9)), 1), nil
}

// RepeatsForLoss is the number of probes per port that make a port losing
// all of them evidence rather than bad luck: the smallest c >= 2 with
// loss^c < alpha, capped at maxRepeats (DefaultMaxRepeats when < 1; a cap
// of 1 is honoured). With 1% loss that is 2; at 20% loss and alpha 0.01,
// 3 (0.2^3 = 0.008). A loss of 1 or more (or NaN) can never be beaten and
// gives the cap. alpha outside (0, 1) means DefaultAlpha.
func RepeatsForLoss(loss, alpha float64, maxRepeats int) int {
	if maxRepeats < 1 {
		maxRepeats = DefaultMaxRepeats
	}
	alpha = normAlpha(alpha)
	if math.IsNaN(loss) || loss >= 1 {
		return maxRepeats
	}
	c := 2
	for c < maxRepeats && chanceAllLost(c, loss) >= alpha {
		c++
	}
	return min(c, maxRepeats)
}

// Plan is how much to probe: Ports source ports, each Repeats times, to
// find a bad member of a group up to MaxWidth wide with probability
// Confidence. Reason says why, for the user.
type Plan struct {
	Ports      int
	Repeats    int
	Confidence float64
	MaxWidth   int
	Reason     string
}

// MakePlan is the plan for a confidence target and widest expected group,
// at an expected background loss (0 when unknown) and significance alpha,
// with at most maxRepeats probes per port (see RepeatsForLoss).
func MakePlan(conf float64, maxWidth int, loss, alpha float64, maxRepeats int) (Plan, error) {
	ports, err := PortsForConfidence(conf, maxWidth)
	if err != nil {
		return Plan{}, err
	}
	if math.IsNaN(loss) || loss < 0 || loss > 1 {
		return Plan{}, errors.New("loss must be between 0 and 1")
	}
	alpha = normAlpha(alpha)
	repeats := RepeatsForLoss(loss, alpha, maxRepeats)
	reason := fmt.Sprintf("%d ports hit one bad member of up to %d with %s%% confidence; ", ports, maxWidth, planPct(conf))
	if chanceAllLost(repeats, loss) < alpha {
		reason += fmt.Sprintf("%d probes per port make an all-lost port evidence at %s%% loss (%s^%d < %s)",
			repeats, planPct(loss), planFloat(loss), repeats, planFloat(alpha))
	} else {
		reason += fmt.Sprintf("%d probes per port (the cap) cannot tell a dead port from bad luck at %s%% loss",
			repeats, planPct(loss))
	}
	return Plan{Ports: ports, Repeats: repeats, Confidence: conf, MaxWidth: maxWidth, Reason: reason}, nil
}

// Settled reports whether a sweep's verdict is settled, and why (or why
// not). The rule, with states from ClassifyAll(stats, alpha):
//
//  1. Coverage: at least plan.Ports ports have been probed. That count is
//     what meets the confidence target (PortsForConfidence); fewer is
//     never settled.
//  2. Depth: every port has at least plan.Repeats probes sent.
//  3. Decided: no port is undecided. A port is undecided when it has no
//     answer yet and background loss still explains that (its state is
//     flaky with zero received); more repeats either get an answer or
//     make it fail. A flaky port that answered at least once is decided:
//     its path works and its losses are background, and no number of
//     repeats will make it ok or fail.
//
// There is no shortcut "enough decided ports meet the confidence target":
// a dead member's ports can never be ok, only fail or undecided, so
// leaving the undecided ones out would hide the very fault the sweep is
// looking for. At high loss a port may stay undecided for ever; the caller
// caps the repeats (RepeatsForLoss, Plan.Repeats) and reports what is
// left as flaky.
func Settled(stats []FlowStats, plan Plan, alpha float64) (bool, string) {
	if len(stats) < plan.Ports {
		return false, fmt.Sprintf("%d of %d planned ports probed", len(stats), plan.Ports)
	}
	repeats := max(plan.Repeats, 1)
	shallow := 0
	for _, s := range stats {
		if s.Sent < repeats {
			shallow++
		}
	}
	if shallow > 0 {
		return false, fmt.Sprintf("%d %s fewer than %d %s", shallow, planPlural(shallow, "port has", "ports have"),
			repeats, planPlural(repeats, "probe", "probes"))
	}
	states, p := ClassifyAll(stats, alpha)
	var ok, fail, flaky, undecided int
	for i, st := range states {
		switch {
		case st == StateOK:
			ok++
		case st == StateFail:
			fail++
		case stats[i].Received == 0:
			undecided++
		default:
			flaky++
		}
	}
	if undecided > 0 {
		return false, fmt.Sprintf("%d %s every probe but %s%% background loss could explain it (%s^%d >= %s); more repeats decide",
			undecided, planPlural(undecided, "port lost", "ports lost"), planPct(p), planFloat(p), planMinSent(stats), planFloat(normAlpha(alpha)))
	}
	return true, fmt.Sprintf("settled: %d ports, %d+ probes each: %d ok, %d fail, %d flaky (background loss %s%%)",
		len(stats), repeats, ok, fail, flaky, planPct(p))
}

// planMinSent is the fewest probes sent on an all-lost port: the one whose
// p^sent is largest.
func planMinSent(stats []FlowStats) int {
	m := 0
	for _, s := range stats {
		if s.Received == 0 && s.Sent > 0 && (m == 0 || s.Sent < m) {
			m = s.Sent
		}
	}
	return m
}

func planPct(f float64) string { return strconv.FormatFloat(100*f, 'g', 3, 64) }

func planFloat(f float64) string { return strconv.FormatFloat(f, 'g', 3, 64) }

func planPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
