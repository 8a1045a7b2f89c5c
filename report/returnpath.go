package report

import (
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Return paths, traced from the target's responder (trace --responder):
// TTL-limited SYN-ACKs on each flow's reversed tuple, so every router
// hashes them like the flow's own answers. Read from the target, a return
// path is a forward path whose destination is the client, so it is
// diagnosed by the same hypotheses; a fault they place on it is a return
// suspect that names the return hop, link or unseen member.

// ReturnPaths is what the return-path traces showed.
type ReturnPaths struct {
	// Flows were traced back; Failing of them fail end to end, and
	// FailingReached of those got a reverse probe through to the client
	// (the path itself passes SYN-ACKs: the loss is elsewhere).
	Flows, Failing, FailingReached int
	// Direction is the return-path diagnosis in the client's frame:
	// return when it places a fault on the way back, forward when the
	// responder's own answers were lost on the way to it, none or unknown.
	Direction Direction
	// Suspects are the places it found, in the client's frame.
	Suspects []Suspect
	// Hypotheses are its explanations, best first, in the client's frame.
	Hypotheses []Hypothesis
	Margin     float64
	// Retried is what the responder's probing again of rate-limited hops
	// brought; nil when it did not.
	Retried *Retried
	// Err says why the return paths could not be traced.
	Err string
}

// ReturnFlows are the flows the responder traced back, read from the
// target: each flow's end-to-end state with its return hops.
func ReturnFlows(flows []FlowTrace) []FlowTrace {
	var out []FlowTrace
	for _, f := range flows {
		if len(f.ReturnHops) == 0 {
			continue
		}
		out = append(out, FlowTrace{Sport: f.Sport, State: f.State, Sent: f.Sent, Received: f.Received,
			Hops: f.ReturnHops, ReachedTTL: ReachedTTL(f.ReturnHops)})
	}
	return out
}

// DiagnoseReturnPaths diagnoses the return paths of flows traced back;
// gw is the target's gateway toward the client, which names a first
// return hop that answers no probe (WithFirstHop), invalid when unknown.
func DiagnoseReturnPaths(flows []FlowTrace, gw netip.Addr) *ReturnPaths {
	rf := ReturnFlows(flows)
	rp := &ReturnPaths{Flows: len(rf), Direction: DirectionNone}
	for _, f := range rf {
		if f.State == hash.StateFail {
			rp.Failing++
			if f.ReachedTTL > 0 {
				rp.FailingReached++
			}
		}
	}
	if rp.Failing == 0 {
		return rp
	}
	// These flows' SYNs arrived: the way from the client to the target
	// works for them, and with it the client's RST and, where routers hash
	// their errors with the flow, the routers' errors to the responder.
	// So only a fault on the way toward the client may explain them: in
	// the return paths' frame, their "SYNs" never arrived.
	toward := map[uint16]bool{}
	for _, f := range rf {
		if f.State == hash.StateFail {
			toward[f.Sport] = false
		}
	}
	d := withFirstHop(diagnose(rf, Sample{Arrived: toward}), rf, gw, "the target's")
	rp.Direction, rp.Margin = flipDirection(d.Direction), d.Margin
	for _, h := range d.Hypotheses {
		rp.Hypotheses = append(rp.Hypotheses, flipHypothesis(h))
	}
	for _, s := range d.Suspects {
		if s.Direction == DirectionForward {
			s.Direction = DirectionReturn
			rp.Suspects = append(rp.Suspects, s)
		}
	}
	return rp
}

// flipDirection turns a direction on the return path (away from the
// target) into the client's frame.
func flipDirection(d Direction) Direction {
	switch d {
	case DirectionForward:
		return DirectionReturn
	case DirectionReturn:
		return DirectionForward
	}
	return d
}

func flipHypothesis(h Hypothesis) Hypothesis {
	h.Direction = flipDirection(h.Direction)
	if h.And != nil {
		and := flipHypothesis(*h.And)
		h.And = &and
	}
	return h
}

// WithReturnPaths adds what the return-path traces showed to a two-ended
// trace's diagnosis. When they place a fault on the way back, its suspects
// lead: they name the return hop or link, where the one-ended reading can
// only name a stage. A forward diagnosis keeps its suspects first (some
// flows are lost both ways); the return ones follow.
func WithReturnPaths(d Diagnosis, rp *ReturnPaths) Diagnosis {
	if rp == nil {
		return d
	}
	d.Return = rp
	d.Text += returnPathsText(rp)
	if rp.Direction != DirectionReturn || len(rp.Suspects) == 0 {
		return d
	}
	switch d.Direction {
	case DirectionForward:
		d.Suspects = append(slices.Clone(d.Suspects), rp.Suspects...)
	default:
		d.Direction = DirectionReturn
		d.Suspects = append(slices.Clone(rp.Suspects), d.Suspects...)
	}
	if len(d.Suspects) > maxSuspects {
		d.Suspects = d.Suspects[:maxSuspects]
	}
	return d
}
