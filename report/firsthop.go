package report

import "net/netip"

// WithFirstHop names this host's gateway, gw (from its routing table), in
// the forward suspects that sit behind a first hop no probe got an answer
// from: the diagnosis can only say "after the first hops" there, and the
// gateway is that first hop. Nothing changes when gw is invalid or some
// flow got an answer at TTL 1 (the first hop then names itself).
func WithFirstHop(d Diagnosis, flows []FlowTrace, gw netip.Addr) Diagnosis {
	return withFirstHop(d, flows, gw, "this host's")
}

// withFirstHop is WithFirstHop for the gateway of whose host: the client's,
// or the target's on the return paths (read from the target, they are
// forward paths).
func withFirstHop(d Diagnosis, flows []FlowTrace, gw netip.Addr, whose string) Diagnosis {
	if !gw.IsValid() || !firstHopSilent(flows) {
		return d
	}
	named := false
	suspects := make([]Suspect, len(d.Suspects))
	for i, s := range d.Suspects {
		if s.Direction == DirectionForward && !s.Addr.IsValid() && len(s.Behind) == 0 {
			s.FirstHop = gw
			s.Evidence += "; " + firstHopText(gw, whose)
			named = named || i == 0
		}
		suspects[i] = s
	}
	d.Suspects = suspects
	if named {
		d.Text += "; " + firstHopText(gw, whose)
	}
	return d
}

// firstHopSilent: some flow was probed at TTL 1 and none got an answer
// there.
func firstHopSilent(flows []FlowTrace) bool {
	probed := false
	for _, f := range flows {
		if len(f.Hops) == 0 {
			continue
		}
		h := f.Hops[0]
		if h.Addr.IsValid() || h.Reached {
			return false
		}
		probed = probed || h.Probes > 0
	}
	return probed
}

func firstHopText(gw netip.Addr, whose string) string {
	return "the first hop, which answered no probe, is " + whose + " gateway " + gw.String() + " (its routing table)"
}
