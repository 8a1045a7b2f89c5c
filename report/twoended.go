package report

import (
	"fmt"
	"net/netip"
	"slices"
)

// TwoEnded is what a responder at the target saw of a sweep's SYNs
// (sweep --responder): for every failing port, whether its SYNs arrived,
// which tells the direction the flow is lost in.
type TwoEnded struct {
	Responder string // HOST:PORT
	// Arrived counts the SYNs that reached the target, by source port;
	// TTL is the TTL the first arrived with.
	Arrived map[uint16]int
	TTL     map[uint16]uint8
	// Retries counts control connections that had to be tried again from
	// another source port (they cross the same fabric).
	Retries int
	// Dropped counts packets the responder's socket dropped: a SYN may
	// have arrived unseen.
	Dropped uint32
	// ByProbe: each SYN was decoded into its probe by its cookie (raw
	// mode), and Foreign counts those on the run's tuples that were none
	// of its probes (another run's). Without it every SYN counted.
	ByProbe bool
	Foreign int
	// Err says why the responder could not be asked; the sweep stands
	// without its evidence.
	Err string
	// Gateway is the target's first hop toward the client, from its
	// routing table, as the responder's reverse trace looked it up;
	// invalid when unknown.
	Gateway netip.Addr
}

// The directions of a two-ended sweep.
const (
	TwoEndedForward = "forward" // the failing ports' SYNs do not arrive
	TwoEndedReturn  = "return"  // they arrive; the answers are lost on the way back
	TwoEndedBoth    = "both"
	TwoEndedNone    = "none" // no port fails
	TwoEndedUnknown = "unknown"
)

// DirectionSummary is where the failing ports' packets are lost.
type DirectionSummary struct {
	Kind string
	// Forward and Return count the failing ports whose SYNs did not, and
	// did, reach the target.
	Forward, Return int
	ForwardPorts    []uint16
	ReturnPorts     []uint16
}

// directions reads the two-ended evidence of the failing ports.
func directions(t *TwoEnded, failing []uint16) *DirectionSummary {
	if t == nil {
		return nil
	}
	d := &DirectionSummary{Kind: TwoEndedUnknown, ForwardPorts: []uint16{}, ReturnPorts: []uint16{}}
	if t.Err != "" {
		return d
	}
	for _, sp := range failing {
		if t.Arrived[sp] > 0 {
			d.ReturnPorts = append(d.ReturnPorts, sp)
		} else {
			d.ForwardPorts = append(d.ForwardPorts, sp)
		}
	}
	slices.Sort(d.ForwardPorts)
	slices.Sort(d.ReturnPorts)
	d.Forward, d.Return = len(d.ForwardPorts), len(d.ReturnPorts)
	switch {
	case len(failing) == 0:
		d.Kind = TwoEndedNone
	case d.Return == 0 && t.Dropped > 0:
		d.Kind = TwoEndedUnknown // the responder may have missed them
	case d.Return == 0:
		d.Kind = TwoEndedForward
	case d.Forward == 0:
		d.Kind = TwoEndedReturn
	default:
		d.Kind = TwoEndedBoth
	}
	return d
}

// directionText is the verdict's sentence on the direction.
func directionText(d *DirectionSummary, t *TwoEnded, dst string) string {
	ports := func(n int) string { return plural(n, "failing port", "failing ports") }
	switch d.Kind {
	case TwoEndedReturn:
		return fmt.Sprintf("the SYNs of all %d %s reach %s (its responder saw them); their answers are lost on the way back", d.Return, ports(d.Return), dst)
	case TwoEndedForward:
		return fmt.Sprintf("none of the SYNs of the %d %s reach %s (its responder saw none): they are lost on the way there", d.Forward, ports(d.Forward), dst)
	case TwoEndedBoth:
		return fmt.Sprintf("the SYNs of %d of the %d failing ports reach %s, whose answers are lost on the way back; those of the other %d are lost on the way there",
			d.Return, d.Return+d.Forward, dst, d.Forward)
	case TwoEndedNone:
		return ""
	}
	if t.Err != "" {
		return "the responder could not be asked (" + t.Err + "), so the direction is not known"
	}
	return fmt.Sprintf("the responder saw none of the failing ports' SYNs but its socket dropped %d packets, so the direction is not known", t.Dropped)
}
