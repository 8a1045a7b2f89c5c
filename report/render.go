package report

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Format is an output format.
type Format string

const (
	FormatTable Format = "table"
	FormatJSON  Format = "json"
	FormatJSONL Format = "jsonl"
	FormatCSV   Format = "csv"
)

// ErrUnknownFormat is returned for a format name we do not render.
var ErrUnknownFormat = errors.New("unknown format")

// ParseFormat checks a --format value.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatTable, FormatJSON, FormatJSONL, FormatCSV:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want table, json, jsonl or csv)", ErrUnknownFormat, s)
}

// Options change how text is rendered.
type Options struct {
	Color bool // ANSI colours (only for a terminal)
	Quiet bool // the verdict only
	// GridAbove: sweeps with more ports than this get a compact grid
	// instead of one table row per port.
	GridAbove int
}

// Render writes the sweep in the chosen format.
func Render(w io.Writer, f Format, s Sweep, opt Options) error {
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(toJSON(s))
	case FormatJSONL:
		return renderJSONL(w, s)
	case FormatCSV:
		return renderCSV(w, s)
	case FormatTable:
		return renderTable(w, s, opt)
	}
	return fmt.Errorf("%w %q", ErrUnknownFormat, f)
}

type jsonDoc struct {
	SchemaVersion int          `json:"schema_version"`
	Type          string       `json:"type,omitempty"`
	Target        jsonTarget   `json:"target"`
	Source        string       `json:"source"`
	Mode          string       `json:"mode"`
	Probe         jsonProbe    `json:"probe"`
	Started       string       `json:"started"`
	DurationMS    float64      `json:"duration_ms"`
	Interrupted   bool         `json:"interrupted"`
	Ports         []jsonPort   `json:"ports,omitempty"`
	ICMP          jsonICMP     `json:"icmp"`
	Summary       *jsonSummary `json:"summary,omitempty"`
	Trace         *traceDoc    `json:"trace,omitempty"` // sweep --trace
}

type jsonTarget struct {
	Host string `json:"host"`
	Addr string `json:"addr"`
	Port uint16 `json:"port"`
}

type jsonProbe struct {
	Count     int     `json:"count"`
	Rate      float64 `json:"rate"`
	TimeoutMS int64   `json:"timeout_ms"`
}

type jsonRTT struct {
	Min float64 `json:"min"`
	Avg float64 `json:"avg"`
	Max float64 `json:"max"`
}

type jsonPort struct {
	Type        string   `json:"type,omitempty"`
	Sport       uint16   `json:"sport"`
	Sent        int      `json:"sent"`
	Received    int      `json:"received"`
	Unreachable int      `json:"unreachable"`
	Lost        int      `json:"lost"`
	SendErrors  int      `json:"send_errors"`
	Late        int      `json:"late"`
	Duplicates  int      `json:"duplicates"`
	State       string   `json:"state"`
	RTTMS       *jsonRTT `json:"rtt_ms"`
	// Arrived counts the SYNs the responder saw arrive (sweep
	// --responder only).
	Arrived *int `json:"arrived,omitempty"`
}

type jsonICMPID struct {
	ID       uint16 `json:"id"`
	Sent     int    `json:"sent"`
	Received int    `json:"received"`
	State    string `json:"state"`
}

type jsonICMP struct {
	Sent          int          `json:"sent"`
	Received      int          `json:"received"`
	Unreachable   int          `json:"unreachable"`
	State         string       `json:"state"`
	SkippedReason string       `json:"skipped_reason,omitempty"`
	RTTMS         *jsonRTT     `json:"rtt_ms"`
	IDs           []jsonICMPID `json:"ids,omitempty"`
}

type jsonSummary struct {
	Type         string   `json:"type,omitempty"`
	Kind         Kind     `json:"kind"`
	Verdict      string   `json:"verdict"`
	ExitCode     int      `json:"exit_code"`
	Ports        int      `json:"ports"`
	OK           int      `json:"ok"`
	Fail         int      `json:"fail"`
	Flaky        int      `json:"flaky"`
	Error        int      `json:"error"`
	FailFraction float64  `json:"fail_fraction"`
	NearestN     int      `json:"nearest_n,omitempty"`
	FailingPorts []uint16 `json:"failing_ports"`
	FlakyPorts   []uint16 `json:"flaky_ports"`
	ErrorPorts   []uint16 `json:"error_ports"`
	LossFraction float64  `json:"loss_fraction"`
	ICMPState    string   `json:"icmp_state"`
	Reproducers  []string `json:"reproducers"`
	Unreachable  int      `json:"unreachable"`
	SendErrors   int      `json:"send_errors"`
	Late         int      `json:"late_replies"`
	Duplicates   int      `json:"duplicate_replies"`
	Unmatched    int      `json:"unmatched_packets"`
	Malformed    int      `json:"malformed_packets"`
	HalfOpen     int      `json:"half_open_acks"`
	LocalDrops   int      `json:"local_drops"`
	// SendFailures lists why probes could not leave the host.
	SendFailures []jsonSendFailure `json:"send_failures"`
	// BackgroundLoss is the per-probe loss on ports that answered at least once.
	BackgroundLoss float64    `json:"background_loss"`
	Width          *jsonWidth `json:"width_estimate"` // null when nothing or everything fails
	Plan           *jsonPlan  `json:"plan,omitempty"` // sweeps planned with --confidence
	// Direction and Responder: sweep --responder only.
	Direction *jsonDirection `json:"direction,omitempty"`
	Responder *jsonResponder `json:"responder,omitempty"`
}

type jsonDirection struct {
	Kind         string   `json:"kind"`
	Forward      int      `json:"forward"`
	Return       int      `json:"return"`
	ForwardPorts []uint16 `json:"forward_ports"`
	ReturnPorts  []uint16 `json:"return_ports"`
}

type jsonResponder struct {
	Addr    string `json:"addr"`
	Retries int    `json:"retries"`
	Dropped uint32 `json:"dropped"`
	// ByProbe: arrivals were told apart by probe (raw mode); Foreign
	// counts SYNs on the run's tuples that were none of its probes.
	ByProbe bool   `json:"by_probe"`
	Foreign int    `json:"foreign"`
	Error   string `json:"error,omitempty"`
	// Gateway is the target's first hop toward the client (trace
	// --responder).
	Gateway string `json:"gateway,omitempty"`
}

type jsonSendFailure struct {
	Cause   string `json:"cause"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

type jsonWidth struct {
	Low  int  `json:"low"`
	Best int  `json:"best"`
	High *int `json:"high"` // null: no upper bound
}

type jsonPlan struct {
	Confidence float64 `json:"confidence"`
	MaxWidth   int     `json:"max_width"`
	Ports      int     `json:"ports"`
	Repeats    int     `json:"repeats"`
	Rounds     int     `json:"rounds"`
	Reason     string  `json:"reason"`
	Stopped    string  `json:"stopped"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func rtt(f hash.FlowStats) *jsonRTT {
	if f.Received == 0 {
		return nil
	}
	return &jsonRTT{Min: ms(f.RTTMin), Avg: ms(f.RTTAvg()), Max: ms(f.RTTMax)}
}

func portJSON(f hash.Judged, t *TwoEnded) jsonPort {
	p := jsonPort{
		Sport: f.Tuple.SrcPort, Sent: f.Sent, Received: f.Received, Unreachable: f.Unreachable,
		Lost: f.Lost, SendErrors: f.SendErrors, Late: f.Late, Duplicates: f.Duplicates,
		State: string(f.State), RTTMS: rtt(f.FlowStats),
	}
	if t != nil && t.Err == "" {
		n := t.Arrived[f.Tuple.SrcPort]
		p.Arrived = &n
	}
	return p
}

func directionJSON(d *DirectionSummary) *jsonDirection {
	if d == nil {
		return nil
	}
	return &jsonDirection{Kind: d.Kind, Forward: d.Forward, Return: d.Return, ForwardPorts: d.ForwardPorts, ReturnPorts: d.ReturnPorts}
}

func responderJSON(t *TwoEnded) *jsonResponder {
	if t == nil {
		return nil
	}
	r := &jsonResponder{Addr: t.Responder, Retries: t.Retries, Dropped: t.Dropped, ByProbe: t.ByProbe, Foreign: t.Foreign, Error: t.Err}
	if t.Gateway.IsValid() {
		r.Gateway = t.Gateway.String()
	}
	return r
}

func summaryJSON(s Sweep) *jsonSummary {
	m := s.Summary
	nonNil := func(p []uint16) []uint16 {
		if p == nil {
			return []uint16{}
		}
		return p
	}
	reps := m.Reproducers
	if reps == nil {
		reps = []string{}
	}
	return &jsonSummary{
		Kind: m.Kind, Verdict: m.Verdict, ExitCode: m.ExitCode(), Ports: m.Ports, OK: m.OK,
		Fail: m.Fail, Flaky: m.Flaky, FailFraction: round4(m.FailFraction), NearestN: m.NearestN,
		FailingPorts: nonNil(m.FailingPorts), FlakyPorts: nonNil(m.FlakyPorts), Error: m.Error, ErrorPorts: nonNil(m.ErrorPorts),
		LossFraction: round4(m.LossFraction), ICMPState: m.ICMPState, Reproducers: reps,
		Unreachable: m.Unreachable, SendErrors: m.SendErrors, Late: m.LateReplies,
		Duplicates: m.DuplicateReps, Unmatched: s.Unmatched, Malformed: s.Malformed, HalfOpen: s.HalfOpen,
		LocalDrops: s.LocalDrops, SendFailures: sendFailuresJSON(s.SendFailures),
		BackgroundLoss: round4(m.BackgroundLoss), Width: widthJSON(m.Width), Plan: planJSON(s.Plan),
		Direction: directionJSON(m.Direction), Responder: responderJSON(s.TwoEnded),
	}
}

func sendFailuresJSON(fs []SendFailure) []jsonSendFailure {
	out := make([]jsonSendFailure, 0, len(fs))
	for _, f := range fs {
		out = append(out, jsonSendFailure(f))
	}
	return out
}

func round4(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 4, 64), 64)
	return v
}

func header(s Sweep) jsonDoc {
	started := ""
	if !s.Started.IsZero() {
		started = s.Started.UTC().Format(time.RFC3339Nano)
	}
	icmpTotal := s.ICMP.Total()
	icmp := jsonICMP{
		Sent: icmpTotal.Sent, Received: icmpTotal.Received, Unreachable: icmpTotal.Unreachable,
		State: s.ICMP.State(), SkippedReason: s.ICMP.Skipped, RTTMS: rtt(icmpTotal),
	}
	for _, id := range s.ICMP.IDs {
		icmp.IDs = append(icmp.IDs, jsonICMPID{ID: id.Tuple.SrcPort, Sent: id.Sent, Received: id.Received, State: string(id.State)})
	}
	return jsonDoc{
		SchemaVersion: SchemaVersion,
		Target:        jsonTarget{Host: s.Host, Addr: s.Target.Addr().String(), Port: s.Target.Port()},
		Source:        addrString(s.Source),
		Mode:          s.Mode,
		Probe:         jsonProbe{Count: s.Count, Rate: s.Rate, TimeoutMS: s.Timeout.Milliseconds()},
		Started:       started,
		DurationMS:    ms(s.Duration),
		Interrupted:   s.Interrupted,
		ICMP:          icmp,
	}
}

func addrString[T interface {
	IsValid() bool
	String() string
}](a T) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func toJSON(s Sweep) jsonDoc {
	doc := header(s)
	doc.Ports = make([]jsonPort, 0, len(s.Ports))
	for _, p := range s.Ports {
		doc.Ports = append(doc.Ports, portJSON(p, s.TwoEnded))
	}
	doc.Summary = summaryJSON(s)
	if s.Trace != nil {
		tr := traceJSON(withBuckets(*s.Trace))
		doc.Trace = &tr
	}
	return doc
}

// renderJSONL writes one record per port, then one summary record that also
// carries the run's header fields.
func renderJSONL(w io.Writer, s Sweep) error {
	enc := json.NewEncoder(w)
	for _, p := range s.Ports {
		rec := portJSON(p, s.TwoEnded)
		rec.Type = "port"
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	doc := header(s)
	doc.Type = "summary"
	doc.Summary = summaryJSON(s)
	return enc.Encode(doc)
}

func renderCSV(w io.Writer, s Sweep) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"sport", "state", "sent", "received", "unreachable", "lost", "send_errors", "late", "duplicates", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, p := range s.Ports {
		row := []string{
			strconv.Itoa(int(p.Tuple.SrcPort)), string(p.State), strconv.Itoa(p.Sent), strconv.Itoa(p.Received),
			strconv.Itoa(p.Unreachable), strconv.Itoa(p.Lost), strconv.Itoa(p.SendErrors),
			strconv.Itoa(p.Late), strconv.Itoa(p.Duplicates), "", "", "",
		}
		if r := rtt(p.FlowStats); r != nil {
			row[9], row[10], row[11] = f(r.Min), f(r.Avg), f(r.Max)
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

type painter struct{ on bool }

func (p painter) paint(code, s string) string {
	if !p.on {
		return s
	}
	return "\x1b[" + code + "m" + s + "\x1b[0m"
}

func (p painter) state(st hash.State, text string) string {
	switch st {
	case hash.StateOK:
		return p.paint("32", text)
	case hash.StateFail:
		return p.paint("1;31", text)
	case hash.StateFlaky:
		return p.paint("33", text)
	case hash.StateError:
		return p.paint("35", text)
	}
	return text
}

func renderTable(w io.Writer, s Sweep, opt Options) error {
	var b strings.Builder
	p := painter{opt.Color}
	m := s.Summary
	if !opt.Quiet {
		fmt.Fprintf(&b, "ecmpscan sweep %s from %s: %s mode, %d source ports x %d, rate %g/s, timeout %s\n\n",
			s.Target, addrString(s.Source), s.Mode, len(s.Ports), s.Count, s.Rate, s.Timeout)
		gridAbove := opt.GridAbove
		if gridAbove == 0 {
			gridAbove = 64
		}
		if len(s.Ports) > gridAbove {
			writeGrid(&b, s.Ports, p)
		} else {
			writePortTable(&b, s.Ports, s.TwoEnded, p)
		}
		b.WriteString("\n")
		writeICMPLine(&b, s)
		if m.Fail > 0 && m.Fail < m.Ports {
			fmt.Fprintf(&b, "failing ports: %s\n", abbreviate(PortRanges(m.FailingPorts), 200))
		}
		if m.Flaky > 0 {
			fmt.Fprintf(&b, "flaky ports:   %s\n", abbreviate(PortRanges(m.FlakyPorts), 200))
		}
		if m.Error > 0 {
			fmt.Fprintf(&b, "not probed:    %s (no probe left the host)\n", abbreviate(PortRanges(m.ErrorPorts), 200))
		}
		if s.HalfOpen > 0 {
			fmt.Fprintf(&b, "half-open:     the server acknowledged %d earlier SYNs without its SYN-ACK reaching us: replies are lost on the way back\n", s.HalfOpen)
		}
		if s.Interrupted {
			b.WriteString("interrupted: partial result\n")
		}
	}
	fmt.Fprintf(&b, "verdict: %s\n", p.paint("1", m.Verdict))
	if !opt.Quiet && len(m.Reproducers) > 0 {
		b.WriteString("reproduce by hand:\n")
		for _, r := range m.Reproducers {
			fmt.Fprintf(&b, "  %s\n", r)
		}
	}
	if s.Trace != nil {
		b.WriteString("\n")
		b.WriteString(traceText(withBuckets(*s.Trace), opt))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writePortTable(b *strings.Builder, ports []hash.Judged, two *TwoEnded, p painter) {
	fmt.Fprintf(b, "%6s  %-5s  %7s  %-23s  %s\n", "SPORT", "STATE", "RECV", "RTT ms min/avg/max", "NOTE")
	for _, f := range ports {
		st := f.State
		rttText := "-"
		if r := rtt(f.FlowStats); r != nil {
			rttText = fmt.Sprintf("%.2f/%.2f/%.2f", r.Min, r.Avg, r.Max)
		}
		var notes []string
		if f.Unreachable > 0 {
			notes = append(notes, fmt.Sprintf("%d unreachable", f.Unreachable))
		}
		if f.SendErrors > 0 {
			notes = append(notes, fmt.Sprintf("%d not sent", f.SendErrors))
		}
		if f.Late > 0 {
			notes = append(notes, fmt.Sprintf("%d late", f.Late))
		}
		if f.Duplicates > 0 {
			notes = append(notes, fmt.Sprintf("%d dup", f.Duplicates))
		}
		if two != nil && two.Err == "" && st == hash.StateFail {
			if n := two.Arrived[f.Tuple.SrcPort]; n > 0 {
				notes = append(notes, fmt.Sprintf("%d SYNs arrived: lost on the way back", n))
			} else {
				notes = append(notes, "no SYN arrived: lost on the way there")
			}
		}
		line := fmt.Sprintf("%6d  %s  %7s  %-23s  %s", f.Tuple.SrcPort,
			p.state(st, fmt.Sprintf("%-5s", st)), fmt.Sprintf("%d/%d", f.Received, f.Sent), rttText, strings.Join(notes, ", "))
		b.WriteString(strings.TrimRight(line, " "))
		b.WriteByte('\n')
	}
}

// writeGrid draws one cell per port, 64 to a row: the shape of the failure
// (one port in four, a block, everything) is visible at a glance.
func writeGrid(b *strings.Builder, ports []hash.Judged, p painter) {
	const perRow = 64
	fmt.Fprintf(b, "one cell per source port: %s ok  %s fail  %s flaky  %s error (not sent)\n",
		p.state(hash.StateOK, "."), p.state(hash.StateFail, "X"), p.state(hash.StateFlaky, "~"), p.state(hash.StateError, "E"))
	for i := 0; i < len(ports); i += perRow {
		end := min(i+perRow, len(ports))
		fmt.Fprintf(b, "%5d  ", ports[i].Tuple.SrcPort)
		for _, f := range ports[i:end] {
			st := f.State
			cell := map[hash.State]string{hash.StateOK: ".", hash.StateFail: "X", hash.StateFlaky: "~", hash.StateError: "E"}[st]
			b.WriteString(p.state(st, cell))
		}
		b.WriteString("\n")
	}
}

func writeICMPLine(b *strings.Builder, s Sweep) {
	if s.ICMP.State() == "skipped" {
		reason := s.ICMP.Skipped
		if reason == "" {
			reason = "disabled"
		}
		fmt.Fprintf(b, "icmp echo: skipped (%s)\n", reason)
		return
	}
	t := s.ICMP.Total()
	fmt.Fprintf(b, "icmp echo: %d identifiers, %d/%d replies: %s\n", len(s.ICMP.IDs), t.Received, t.Sent, s.ICMP.State())
}

// abbreviate cuts a long port list at a comma; the full list is in the
// machine-readable formats.
func abbreviate(list string, limit int) string {
	if len(list) <= limit {
		return list
	}
	cut := strings.LastIndexByte(list[:limit], ',')
	if cut < 0 {
		cut = limit
	}
	rest := strings.Count(list[cut:], ",")
	return fmt.Sprintf("%s,... (%d more; --format json lists all)", list[:cut], rest)
}

func widthJSON(w hash.WidthEstimate) *jsonWidth {
	if !w.Valid() {
		return nil
	}
	out := &jsonWidth{Low: w.Low, Best: w.Best}
	if w.High > 0 {
		high := w.High
		out.High = &high
	}
	return out
}

func planJSON(p *SweepPlan) *jsonPlan {
	if p == nil {
		return nil
	}
	return &jsonPlan{Confidence: p.Confidence, MaxWidth: p.MaxWidth, Ports: p.Ports, Repeats: p.Repeats,
		Rounds: p.Rounds, Reason: p.Reason, Stopped: p.Stopped}
}
