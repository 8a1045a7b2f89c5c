package report

import (
	"fmt"
	"math"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
)

// The prose of the hypotheses: what hypothesis.go infers, in words.

// hypothesisEvidence says what a hypothesis rests on.
func hypothesisEvidence(h Hypothesis) string {
	n := h.Explains
	flows := plural(n, "failing flow", "failing flows")
	verb := func(one, many string) string { return plural(n, one, many) }
	switch h.Kind {
	case HypMember:
		return fmt.Sprintf("%d %s %s at TTL %d behind %s while healthy flows through each of them go on: "+
			"%s at TTL %d that never answers and that no healthy flow reaches (dead, blackholed or silent)",
			n, flows, verb("dies", "die"), h.TTL, behindText(h), memberName(h), h.TTL)
	case HypReturnMember, HypReturnLink:
		if h.ICMPPath == "" {
			return returnApartEvidence(h, flows)
		}
	}
	switch h.Kind {
	case HypReturnMember:
		return fmt.Sprintf("%d %s %s up to TTL %d and no further, whatever forward member they took (%.0f%% of the flows): "+
			"where routers send their errors along the flow's return path, one member of that stage (or its link toward the client) "+
			"loses the answers and the errors of every router beyond it",
			n, flows, verb("answers", "answer"), h.TTL, 100*h.Share)
	case HypReturnLink:
		return fmt.Sprintf("%d %s %s up to TTL %d and no further, whatever forward member they took (%.0f%% of the flows): "+
			"a link toward the client into one member of that stage, dead that way, loses the answers and the errors of every router beyond it "+
			"(the member's own errors get out)",
			n, flows, verb("answers", "answer"), h.TTL, 100*h.Share)
	case HypReturnPath:
		return fmt.Sprintf("%d %s %s as far as healthy flows do but never the destination's answer: "+
			"it is lost on the way back (or the target does not answer these flows)", n, flows, verb("gets", "get"))
	case HypLink:
		return fmt.Sprintf("%d %s %s right after %s (TTL %d), where healthy flows go on, and never %s %s, which healthy flows reach from other hops",
			n, flows, verb("dies", "die"), h.Addr, h.TTL-1, verb("reaches", "reach"), h.Next)
	case HypHop:
		return fmt.Sprintf("%s answers %d %s and passes them no further", h.Addr, n, flows)
	}
	if !h.Addr.IsValid() {
		return fmt.Sprintf("%d %s %s no answer at any TTL while healthy flows do", n, flows, verb("gets", "get"))
	}
	return fmt.Sprintf("%d %s %s right after %s (TTL %d) while healthy flows through it go on: the next hop they take never answers",
		n, flows, verb("dies", "die"), h.Addr, h.TTL-1)
}

// returnApartEvidence is a return fault's evidence where the routers'
// errors take paths of their own: some failing flows go silent after the
// stage, some answer as far as healthy flows do.
func returnApartEvidence(h Hypothesis, flows string) string {
	what := "one member of the return stage at TTL %d (or its link toward the client)"
	if h.Kind == HypReturnLink {
		what = "a link toward the client into one member of the stage at TTL %d, dead that way,"
	}
	return fmt.Sprintf("%d %s %s whatever forward member they took (%.0f%% of the flows), silent after TTL %d or answering as far as healthy flows do: "+
		what+" loses the answers, and the routers' errors that happen to take it", h.Explains, flows, plural(h.Explains, "fails", "fail"), 100*h.Share, h.TTL, h.TTL)
}

// behindText lists the routers an unseen member is behind, with the
// silent hops among them.
func behindText(h Hypothesis) string {
	silent := ""
	if h.BehindSilent > 0 {
		silent = fmt.Sprintf("%d %s", h.BehindSilent, plural(h.BehindSilent, "hop silent for every flow", "hops silent for every flow"))
	}
	switch {
	case len(h.Behind) == 0:
		return silent
	case silent == "":
		return addrList(h.Behind, 6)
	}
	return addrList(h.Behind, 6) + " and " + silent
}

// memberName names an unseen member by where it must be: "the 3rd member"
// where 2 answer at its TTL.
func memberName(h Hypothesis) string {
	if h.Beside <= 0 {
		return "a member"
	}
	if h.BesideAddrs > h.Beside {
		return fmt.Sprintf("a member beside the %d seen (%d addresses, read as one per link; the %s)", h.Beside, h.BesideAddrs, ordinal(h.Beside+1))
	}
	return fmt.Sprintf("a member beside the %d seen (the %s)", h.Beside, ordinal(h.Beside+1))
}

func ordinal(n int) string {
	suffix := "th"
	switch {
	case n%100 >= 11 && n%100 <= 13:
	case n%10 == 1:
		suffix = "st"
	case n%10 == 2:
		suffix = "nd"
	case n%10 == 3:
		suffix = "rd"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// addrOrClient names the last address before a silent hop: this host when
// no router answered before it.
func addrOrClient(x netip.Addr) string {
	if !x.IsValid() {
		return "this host"
	}
	return x.String()
}

// hypothesisLead is the verdict's first clause for a hypothesis.
func hypothesisLead(h Hypothesis) string {
	switch {
	case h.Kind == HypLink && h.Silent:
		return fmt.Sprintf("failing flows die on the forward path after the silent hop at TTL %d behind %s: suspect the link from that silent hop to %s",
			h.TTL-1, addrOrClient(h.Addr), h.Next)
	case h.Kind == HypLink:
		return fmt.Sprintf("failing flows die on the forward path: suspect the link %s -> %s", h.Addr, h.Next)
	case h.Kind == HypNextHop && h.Silent:
		return fmt.Sprintf("failing flows die on the forward path at or right after the silent hop at TTL %d behind %s: the hop they take never answers",
			h.TTL-1, addrOrClient(h.Addr))
	case h.Kind == HypNextHop:
		if !h.Addr.IsValid() {
			return "failing flows die on the forward path at the first hop"
		}
		return fmt.Sprintf("failing flows die on the forward path right after %s (TTL %d): the next hop they take never answers", h.Addr, h.TTL-1)
	case h.Kind == HypMember:
		return fmt.Sprintf("failing flows die on the forward path at TTL %d behind %s: %s there never answers and no healthy flow reaches it",
			h.TTL, behindText(h), memberName(h))
	case h.Kind == HypHop:
		return fmt.Sprintf("failing flows die on the forward path at %s, which answers them and passes them no further", h.Addr)
	case h.Kind == HypReturnMember:
		return fmt.Sprintf("the failing flows' answers are lost on the way back, at the return stage of TTL %d (a member or its link toward the client)", h.TTL)
	case h.Kind == HypReturnLink:
		return fmt.Sprintf("the failing flows' answers are lost on the way back, on a link toward the client into the stage of TTL %d", h.TTL)
	}
	return "the failing flows' answers are lost on the way back"
}

// hypothesisText is the verdict: the best hypothesis, how sure, and what
// would decide when it is not sure.
func (a *analysis) hypothesisText(d Diagnosis) string {
	best := d.Hypotheses[0]
	failing := 0
	for _, f := range a.flows {
		if f.State == hash.StateFail {
			failing++
		}
	}
	rival := best
	if a.rival != nil {
		rival = *a.rival
	}
	lead := hypothesisLead(best)
	if best.And != nil {
		lead += "; and " + hypothesisLead(*best.And) + " (a link dead both ways, or two faults)"
	}
	alone := ""
	if best.And != nil && rival.And == nil {
		alone = " alone" // one fault against the pair
	}
	text := lead
	if d.Direction == DirectionUnknown && d.Separate != "" {
		how := "about equally (likelihood ratio " + ratioText(d.Margin) + ")"
		if d.Margin >= decisive {
			how = "(likelihood ratio " + ratioText(d.Margin) + ", short of the " + ratioText(decisiveWhereRateLimited) +
				" to 1 a direction needs where routers rate-limit their errors: there verdicts have been wrong more often than their ratio says)"
		}
		text = fmt.Sprintf("two explanations fit the data %s: %s, or %s%s; %s",
			how, lead, hypothesisLead(rival), alone, d.Separate)
	}
	if best.And != nil {
		text += fmt.Sprintf(" (explains %d of %d failing %s: %d on the way out, %d on the way back",
			best.Explains+best.And.Explains, failing, plural(failing, "flow", "flows"), best.Explains, best.And.Explains)
	} else {
		text += fmt.Sprintf(" (explains %d of %d failing %s", best.Explains, failing, plural(failing, "flow", "flows"))
	}
	switch {
	case best.Score <= 0:
		text += "; no better than chance"
	case len(d.Hypotheses) == 1:
		text += "; nothing else explains them"
	case math.IsInf(d.Margin, 1):
	case d.Direction != DirectionUnknown:
		text += fmt.Sprintf("; %s times likelier than %s%s", ratioText(d.Margin), placeName(rival), alone)
		if a.directionNeed() > decisive {
			// Where routers rate-limit, measured: such verdicts are wrong
			// more often than the ratio says (README, "How sure is a
			// verdict?").
			text += ", less sure than that reads: where routers rate-limit their errors, as here, verdicts have been wrong more often than their ratio says"
		}
	}
	text += ")"
	if d.Direction != DirectionUnknown && d.Separate != "" {
		text += "; where exactly is less sure: " + d.Separate
	}
	return text
}

func ratioText(logRatio float64) string {
	switch {
	case logRatio > math.Log(1e6):
		return "over a million"
	case logRatio < 0:
		return "1"
	}
	return fmt.Sprintf("%.0f", math.Exp(logRatio))
}

// tentativeText names the forward half of a pair that fits better than
// the return verdict alone, but not by the decisive ratio.
func tentativeText(pair Hypothesis) string {
	h := pair
	h.And = nil
	return fmt.Sprintf("a second fault on the way out as well fits better, not by 10 to 1: %s (%d %s)",
		hypothesisLead(h), h.Explains, plural(h.Explains, "failing flow", "failing flows"))
}
