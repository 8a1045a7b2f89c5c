// Package report turns aggregated results into verdicts and renders them as
// text, JSON, JSON lines or CSV.
package report

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// SchemaVersion is the version of the JSON documents; it changes only when a
// contract key changes meaning or goes away.
const SchemaVersion = 1

// Kind names the class of a sweep's verdict; each maps to one exit code.
type Kind string

const (
	KindHealthy    Kind = "healthy"     // every port answered every time
	KindLoss       Kind = "loss"        // no port fails on every try, some lost probes
	KindECMPFault  Kind = "ecmp-fault"  // some ports fail on every try, others never
	KindTargetDown Kind = "target-down" // every port fails
	KindNoData     Kind = "no-data"     // nothing was sent (interrupted at once)
)

// Sweep is everything a renderer needs about one sweep.
type Sweep struct {
	Host        string // as the user wrote it
	Target      netip.AddrPort
	Source      netip.Addr
	Mode        string // raw or connect
	Count       int
	Rate        float64
	Timeout     time.Duration
	Started     time.Time
	Duration    time.Duration
	Interrupted bool
	Ports       []hash.FlowStats // one per source port, sorted
	ICMP        ICMP
	Summary     Summary
	// Unmatched and Malformed count received packets that were not replies
	// to our probes, or did not parse.
	Unmatched, Malformed int
	// HalfOpen counts bare ACKs of an earlier probe: the server got that SYN
	// but its SYN-ACK never came back.
	HalfOpen int
	// Trace holds the hop-by-hop trace of sweep --trace; nil without it.
	Trace *Trace
	// Plan describes a sweep planned by confidence; nil otherwise.
	Plan *SweepPlan
}

// SweepPlan is a sweep sized by --confidence and --max-width, and how it ended.
type SweepPlan struct {
	hash.Plan
	Rounds  int    // probing rounds run
	Stopped string // why probing stopped
}

// ICMP is the echo side of a sweep.
type ICMP struct {
	Skipped string // why ICMP was not probed; empty when it was
	IDs     []hash.FlowStats
}

// Total sums the echo identifiers.
func (i ICMP) Total() hash.FlowStats { return hash.Total(i.IDs) }

// State is ok/fail/flaky over all echo probes, or "skipped".
func (i ICMP) State() string {
	if i.Skipped != "" || len(i.IDs) == 0 {
		return "skipped"
	}
	t := i.Total()
	return string(hash.Classify(t.Sent, t.Received))
}

// Summary is the verdict of a sweep.
type Summary struct {
	Kind          Kind
	Verdict       string
	Ports         int
	OK            int
	Fail          int
	Flaky         int
	FailFraction  float64
	NearestN      int // the fail fraction is closest to 1/NearestN; 0 when nothing fails
	FailingPorts  []uint16
	FlakyPorts    []uint16
	ICMPState     string
	Reproducers   []string
	LossFraction  float64 // lost probes / sent probes, over all ports
	Unreachable   int
	SendErrors    int
	LateReplies   int
	DuplicateReps int
	// BackgroundLoss is the per-probe loss on ports that answered at least
	// once; a port that lost every probe is fail only when this loss makes
	// that implausible (hash.ClassifyWithLoss).
	BackgroundLoss float64
	// Width estimates the ECMP group's width from the fail fraction,
	// assuming one bad member (95% Clopper-Pearson); invalid when nothing or
	// everything fails.
	Width hash.WidthEstimate
}

// ExitCode maps a verdict to the documented exit code.
func (s Summary) ExitCode() int {
	switch s.Kind {
	case KindECMPFault:
		return 1
	case KindTargetDown:
		return 4
	}
	return 0
}

// Summarize computes the verdict from the per-port and ICMP aggregates. It
// first judges every port in place against the background loss
// (hash.Judge), so renderers show the same states the verdict counted.
// pathWidth is what traces tell of the group's width (TraceWidth), combined
// with the estimate from the fail fraction; pass the zero value without.
func Summarize(host string, target netip.AddrPort, ports []hash.FlowStats, icmp ICMP, pathWidth hash.WidthEstimate) Summary {
	s := Summary{Ports: len(ports), ICMPState: icmp.State()}
	s.BackgroundLoss = hash.Judge(ports, hash.DefaultAlpha)
	var sent, lost int
	for _, p := range ports {
		sent += p.Sent
		lost += p.Sent - p.Received
		s.Unreachable += p.Unreachable
		s.SendErrors += p.SendErrors
		s.LateReplies += p.Late
		s.DuplicateReps += p.Duplicates
		switch p.State() {
		case hash.StateOK:
			s.OK++
		case hash.StateFail:
			s.Fail++
			s.FailingPorts = append(s.FailingPorts, p.Tuple.SrcPort)
		case hash.StateFlaky:
			s.Flaky++
			s.FlakyPorts = append(s.FlakyPorts, p.Tuple.SrcPort)
		}
	}
	if sent > 0 {
		s.LossFraction = float64(lost) / float64(sent)
	}
	if s.Ports > 0 {
		s.FailFraction = float64(s.Fail) / float64(s.Ports)
	}
	if s.Fail > 0 {
		s.NearestN = int(math.Round(1 / s.FailFraction))
	}
	if w, ok := hash.EstimateWidth(s.Fail, s.Ports, 1, 0.95); ok {
		s.Width = hash.CombineWidth(w, pathWidth)
	}
	icmpText := icmpPhrase(s.ICMPState)
	dst := target.Addr().String()
	switch {
	case s.Ports == 0:
		s.Kind = KindNoData
		s.Verdict = "no probe was sent"
	case s.Fail == s.Ports:
		s.Kind = KindTargetDown
		if s.ICMPState == string(hash.StateOK) {
			s.Verdict = fmt.Sprintf("all %d source ports fail while ICMP passes: port %d on %s is filtered or the service is down, not an ECMP fault", s.Ports, target.Port(), dst)
		} else {
			s.Verdict = fmt.Sprintf("all %d source ports fail%s: %s is down or unreachable, not an ECMP fault", s.Ports, icmpText, dst)
		}
	case s.Fail > 0:
		s.Kind = KindECMPFault
		s.Verdict = fmt.Sprintf("%d of %d source ports fail on every try%s: one ECMP member toward %s drops these flows (%.1f%% of flows, about 1/%d%s)",
			s.Fail, s.Ports, icmpText, dst, 100*s.FailFraction, s.NearestN, widthPhrase(s.Width))
		if s.Flaky > 0 {
			s.Verdict += fmt.Sprintf("; %d more %s lost some probes", s.Flaky, plural(s.Flaky, "port", "ports"))
		}
	case s.Flaky > 0:
		s.Kind = KindLoss
		s.Verdict = fmt.Sprintf("no source port fails on every try; %d of %d ports lost some probes (%.1f%% of probes lost)%s: random loss, not a dead ECMP member",
			s.Flaky, s.Ports, 100*s.LossFraction, icmpText)
	default:
		s.Kind = KindHealthy
		s.Verdict = fmt.Sprintf("all %d source ports answered every probe%s", s.Ports, icmpText)
		if s.ICMPState == string(hash.StateFail) || s.ICMPState == string(hash.StateFlaky) {
			s.Verdict += " (ICMP echo is filtered or rate-limited; TCP is what matters here)"
		}
	}
	healthy, haveHealthy := okPort(ports)
	s.Reproducers = reproducers(host, target, s.FailingPorts, healthy, haveHealthy)
	return s
}

func icmpPhrase(state string) string {
	switch state {
	case string(hash.StateOK):
		return " while ICMP passes"
	case string(hash.StateFail):
		return " and ICMP fails too"
	case string(hash.StateFlaky):
		return " and ICMP is lossy"
	}
	return ""
}

func okPort(ports []hash.FlowStats) (uint16, bool) {
	for _, p := range ports {
		if p.State() == hash.StateOK {
			return p.Tuple.SrcPort, true
		}
	}
	return 0, false
}

// reproducers are commands an engineer can paste to see the failure by hand:
// the first failing ports, and one healthy port for contrast.
func reproducers(host string, target netip.AddrPort, failing []uint16, healthy uint16, haveHealthy bool) []string {
	if len(failing) == 0 {
		return nil
	}
	if host == "" {
		host = target.Addr().String()
	}
	v6 := ""
	if target.Addr().Is6() && !target.Addr().Is4In6() {
		v6 = "-6 "
	}
	dport := strconv.Itoa(int(target.Port()))
	var out []string
	for i, sp := range failing {
		if i == 3 {
			break
		}
		out = append(out, fmt.Sprintf("nc %s-p %d -w 5 -vz %s %s", v6, sp, host, dport))
	}
	out = append(out, fmt.Sprintf("traceroute %s-T -p %s --sport %d %s", v6, dport, failing[0], host))
	if haveHealthy {
		out = append(out, fmt.Sprintf("nc %s-p %d -w 5 -vz %s %s   # a healthy port, for contrast", v6, healthy, host, dport))
	}
	return out
}

// PortRanges writes ports compactly: 30001-30003,30007.
func PortRanges(ports []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ports[i])))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(ports[j])))
		}
		i = j + 1
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// widthPhrase reads a width estimate for the verdict.
func widthPhrase(w hash.WidthEstimate) string {
	switch {
	case !w.Valid():
		return ""
	case w.High == 0:
		return fmt.Sprintf("; if one member is bad, the group has at least %d", w.Low)
	case w.Low == w.High:
		return fmt.Sprintf("; if one member is bad, the group is %d wide", w.Low)
	}
	return fmt.Sprintf("; if one member is bad, the group is %d to %d wide", w.Low, w.High)
}
