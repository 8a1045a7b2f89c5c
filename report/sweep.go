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
	// KindCannotProbe: too little could be measured to judge the path
	// (probes could not leave the host, or the host dropped the replies).
	KindCannotProbe Kind = "cannot-probe"
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
	Ports       []hash.Judged // one per source port, sorted
	ICMP        ICMP
	Summary     Summary
	// Unmatched and Malformed count received packets that were not replies
	// to our probes, or did not parse.
	Unmatched, Malformed int
	// HalfOpen counts bare ACKs of an earlier probe: the server got that SYN
	// but its SYN-ACK never came back.
	HalfOpen int
	// LocalDrops counts packets this host dropped before ecmpscan read
	// them (a full socket receive buffer).
	LocalDrops int
	// SendFailures are the probes that never left the host, by cause,
	// most frequent first.
	SendFailures []SendFailure
	// Trace holds the hop-by-hop trace of sweep --trace; nil without it.
	Trace *Trace
	// Plan describes a sweep planned by confidence; nil otherwise.
	Plan *SweepPlan
	// TwoEnded is what the target's responder saw (sweep --responder);
	// nil otherwise.
	TwoEnded *TwoEnded
}

// SweepPlan is a sweep sized by --confidence and --max-width, and how it ended.
type SweepPlan struct {
	hash.Plan
	Rounds  int    // probing rounds run
	Stopped string // why probing stopped
}

// SendFailure is how many probes one cause kept from leaving the host.
type SendFailure struct {
	Cause   string // probe.Cause
	Count   int
	Example string // the first error, as the system said it
}

// ICMP is the echo side of a sweep.
type ICMP struct {
	Skipped string // why ICMP was not probed; empty when it was
	IDs     []hash.Judged
}

// Total sums the echo identifiers.
func (i ICMP) Total() hash.FlowStats {
	stats := make([]hash.FlowStats, len(i.IDs))
	for k, id := range i.IDs {
		stats[k] = id.FlowStats
	}
	return hash.Total(stats)
}

// State sums up the identifiers' states, judged by the same rule as ports:
// ok when every measured identifier is ok, fail when every one fails,
// error when none could be sent, flaky otherwise; or "skipped".
func (i ICMP) State() string {
	if i.Skipped != "" || len(i.IDs) == 0 {
		return "skipped"
	}
	count := map[hash.State]int{}
	for _, id := range i.IDs {
		count[id.State]++
	}
	measured := len(i.IDs) - count[hash.StateError]
	switch {
	case measured == 0:
		return string(hash.StateError)
	case count[hash.StateOK] == measured:
		return string(hash.StateOK)
	case count[hash.StateFail] == measured:
		return string(hash.StateFail)
	}
	return string(hash.StateFlaky)
}

// Summary is the verdict of a sweep.
type Summary struct {
	Kind          Kind
	Verdict       string
	Ports         int
	OK            int
	Fail          int
	Flaky         int
	Error         int     // ports none of whose probes left the host
	FailFraction  float64 // of the measured (not error) ports
	NearestN      int     // the fail fraction is closest to 1/NearestN; 0 when nothing fails
	FailingPorts  []uint16
	FlakyPorts    []uint16
	ErrorPorts    []uint16
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
	// Direction is where the failing ports' packets are lost, from the
	// responder's evidence (sweep --responder); nil otherwise.
	Direction *DirectionSummary
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
	case KindCannotProbe:
		return 3
	}
	return 0
}

// Summarize computes the verdict from the judged ports and ICMP echo and
// what the engine counted. pathWidth is what traces tell of the group's
// width (TraceWidth), combined with the estimate from the fail fraction;
// pass the zero value without. backgroundLoss is the loss the ports were
// judged against.
func Summarize(s Sweep, backgroundLoss float64, pathWidth hash.WidthEstimate) Summary {
	m := countPorts(s.Ports)
	m.ICMPState, m.BackgroundLoss = s.ICMP.State(), backgroundLoss
	measured := m.Ports - m.Error
	if measured > 0 {
		m.FailFraction = float64(m.Fail) / float64(measured)
	}
	if m.Fail > 0 {
		m.NearestN = int(math.Round(1 / m.FailFraction))
	}
	if w, ok := hash.EstimateWidth(m.Fail, measured, 1, 0.95); ok {
		m.Width = hash.CombineWidth(w, pathWidth)
	}
	m.Kind, m.Verdict = verdict(m, s)
	m.Direction = directions(s.TwoEnded, m.FailingPorts)
	if m.Direction != nil && (m.Kind == KindECMPFault || m.Kind == KindTargetDown || m.Direction.Kind == TwoEndedUnknown) {
		if text := directionText(m.Direction, s.TwoEnded, s.Target.Addr().String()); text != "" {
			m.Verdict += "; " + text
		}
	}
	if m.Error > 0 && m.Kind != KindCannotProbe {
		m.Verdict += fmt.Sprintf("; %d of %d source ports could not be probed and are left out (%s)",
			m.Error, m.Ports, failureText(s.SendFailures))
	}
	healthy, haveHealthy := okPort(s.Ports)
	m.Reproducers = reproducers(s.Host, s.Target, m.FailingPorts, healthy, haveHealthy)
	return m
}

// countPorts adds up the ports' states and counters.
func countPorts(ports []hash.Judged) Summary {
	m := Summary{Ports: len(ports)}
	var sent, lost int
	for _, p := range ports {
		sent += p.Sent
		lost += p.Sent - p.Received
		m.Unreachable += p.Unreachable
		m.SendErrors += p.SendErrors
		m.LateReplies += p.Late
		m.DuplicateReps += p.Duplicates
		sp := p.Tuple.SrcPort
		switch p.State {
		case hash.StateOK:
			m.OK++
		case hash.StateFail:
			m.Fail++
			m.FailingPorts = append(m.FailingPorts, sp)
		case hash.StateFlaky:
			m.Flaky++
			m.FlakyPorts = append(m.FlakyPorts, sp)
		case hash.StateError:
			m.Error++
			m.ErrorPorts = append(m.ErrorPorts, sp)
		}
	}
	if sent > 0 {
		m.LossFraction = float64(lost) / float64(sent)
	}
	return m
}

// verdict classifies the counts. What could not be measured is never
// called healthy: too few ports measured, or replies dropped by this host
// while probes were lost, is cannot-probe.
func verdict(m Summary, s Sweep) (Kind, string) {
	icmpText := icmpPhrase(m.ICMPState)
	dst := s.Target.Addr().String()
	measured := m.Ports - m.Error
	switch {
	case m.Ports == 0:
		return KindNoData, "no probe was sent"
	case measured == 0:
		return KindCannotProbe, fmt.Sprintf("no probe could leave this host, nothing was measured: %s", failureText(s.SendFailures))
	case m.Error > measured:
		return KindCannotProbe, fmt.Sprintf("%d of %d source ports could not be probed, too few measured to judge: %s",
			m.Error, m.Ports, failureText(s.SendFailures))
	case s.LocalDrops > 0 && m.Fail+m.Flaky > 0:
		return KindCannotProbe, fmt.Sprintf("this host dropped %d %s before ecmpscan read them (socket receive buffer full), so the lost probes say nothing about the path: lower --rate (now %g/s)",
			s.LocalDrops, plural(s.LocalDrops, "packet", "packets"), s.Rate)
	case m.Fail == measured:
		if m.ICMPState == string(hash.StateOK) {
			return KindTargetDown, fmt.Sprintf("all %d source ports fail while ICMP passes: port %d on %s is filtered or the service is down, not an ECMP fault", measured, s.Target.Port(), dst)
		}
		return KindTargetDown, fmt.Sprintf("all %d source ports fail%s: %s is down or unreachable, not an ECMP fault", measured, icmpText, dst)
	case m.Fail > 0:
		v := fmt.Sprintf("%d of %d source ports fail on every try%s: one ECMP member toward %s drops these flows (%.1f%% of flows, about 1/%d%s)",
			m.Fail, measured, icmpText, dst, 100*m.FailFraction, m.NearestN, widthPhrase(m.Width))
		if m.Flaky > 0 {
			v += fmt.Sprintf("; %d more %s lost some probes", m.Flaky, plural(m.Flaky, "port", "ports"))
		}
		return KindECMPFault, v
	case m.Flaky > 0:
		return KindLoss, fmt.Sprintf("no source port fails on every try; %d of %d ports lost some probes (%.1f%% of probes lost)%s: random loss, not a dead ECMP member",
			m.Flaky, measured, 100*m.LossFraction, icmpText)
	}
	v := fmt.Sprintf("all %d source ports answered every probe%s", measured, icmpText)
	if m.ICMPState == string(hash.StateFail) || m.ICMPState == string(hash.StateFlaky) {
		v += " (ICMP echo is filtered or rate-limited; TCP is what matters here)"
	}
	return KindHealthy, v
}

// failureText names the main cause of send failures and its fix.
func failureText(fs []SendFailure) string {
	if len(fs) == 0 {
		return "the probes could not be sent"
	}
	f := fs[0]
	text := causeAdvice(f.Cause, f.Example)
	if len(fs) > 1 {
		text += fmt.Sprintf(" (and %d more %s)", len(fs)-1, plural(len(fs)-1, "cause", "causes"))
	}
	return text
}

func causeAdvice(cause, example string) string {
	switch cause {
	case "firewall":
		return fmt.Sprintf("a local firewall OUTPUT rule drops the probes (%s); allow them (see nft list ruleset or iptables -S OUTPUT)", example)
	case "port-in-use":
		return fmt.Sprintf("the source ports are in use on this host (%s); choose free ports with --sport", example)
	case "address-not-available":
		return fmt.Sprintf("the source address is not on this host (%s); check --src", example)
	case "no-buffer-space":
		return fmt.Sprintf("this host ran out of socket buffers (%s); lower --rate", example)
	case "no-route":
		return fmt.Sprintf("this host has no route for the probes (%s); check ip route get on the target", example)
	}
	return fmt.Sprintf("sending failed: %s", example)
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

func okPort(ports []hash.Judged) (uint16, bool) {
	for _, p := range ports {
		if p.State == hash.StateOK {
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
