package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// FormatDOT is a Graphviz digraph of the traced paths (trace only).
const FormatDOT Format = "dot"

// ParseTraceFormat checks a --format value of the trace command.
func ParseTraceFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatTable, FormatJSON, FormatDOT:
		return f, nil
	}
	return "", fmt.Errorf("%w %q (want table, json or dot)", ErrUnknownFormat, s)
}

// RenderTrace writes a trace in the chosen format: table (text), json or
// dot. When t.Buckets is empty they are computed from the flows.
func RenderTrace(w io.Writer, f Format, t Trace, opt Options) error {
	t = withBuckets(t)
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(traceJSON(t))
	case FormatDOT:
		_, err := io.WriteString(w, traceDOT(t))
		return err
	case FormatTable:
		_, err := io.WriteString(w, traceText(t, opt))
		return err
	}
	return fmt.Errorf("%w %q", ErrUnknownFormat, f)
}

// withBuckets fills in the path buckets when the caller left them out.
func withBuckets(t Trace) Trace {
	if len(t.Buckets) == 0 && len(t.Flows) > 0 {
		t.Buckets = BucketPaths(t.Flows)
	}
	return t
}

// The JSON document of a trace (--format json). schema_version changes only
// when a key changes meaning or goes away; new keys may appear.
//
//	{
//	  "schema_version": 1,
//	  "type": "trace",
//	  "target": {"host", "addr", "port"},
//	  "source": "198.18.1.1",
//	  "mode": "raw",
//	  "max_ttl": 8, "probes_per_hop": 3,
//	  "count": 3,                       // end-to-end probes per flow
//	  "started": "RFC 3339", "duration_ms": 812.5, "interrupted": false,
//	  "flows": [{"sport": 30002, "state": "ok|fail|flaky", "sent": 3, "received": 0,
//	             "reached_ttl": 0,      // 0: the destination answered no traced probe
//	             "signature": "198.18.255.1 * *",
//	             "hops": [{"ttl": 1, "addr": "198.18.255.1" or null, "others": [...] (omitted when empty),
//	                       "rtt_ms": 0.12 or null, "probes": 3, "answers": 3, "reached": false,
//	                       "icmp_type": 11, "icmp_code": 0, "mpls": [...] (omitted when empty)}]}],
//	  "buckets": [{"signature", "hops": [addr or null], "ports": [...], "ok", "fail", "flaky",
//	               "sent", "received", "loss", "loss_low", "loss_high"}],   // 95% Wilson interval
//	  "diagnosis": {"direction": "forward|return|none|unknown",
//	                "suspects": [{"kind": "link|hop", "addr": "..." or null, "next": "..." or null,
//	                              "evidence": "...", "score": 12}],      // [] when none
//	                "text": "...",
//	                "reverse_trace": "ecmpscan trace 198.18.1.1:30002 --sport 3306"}  // return only
//	}
type traceDoc struct {
	SchemaVersion int             `json:"schema_version"`
	Type          string          `json:"type"`
	Target        jsonTarget      `json:"target"`
	Source        string          `json:"source"`
	Mode          string          `json:"mode"`
	MaxTTL        int             `json:"max_ttl"`
	ProbesPerHop  int             `json:"probes_per_hop"`
	Count         int             `json:"count"`
	Started       string          `json:"started"`
	DurationMS    float64         `json:"duration_ms"`
	Interrupted   bool            `json:"interrupted"`
	Retried       *retriedJSON    `json:"retried,omitempty"`
	Gateway       *string         `json:"gateway,omitempty"` // this host's first hop toward the target
	Flows         []traceFlowJSON `json:"flows"`
	Buckets       []bucketJSON    `json:"buckets"`
	Diagnosis     diagnosisJSON   `json:"diagnosis"`
	NotProbed     []uint16        `json:"not_probed,omitempty"`
	Responder     *jsonResponder  `json:"responder,omitempty"` // trace --responder only
	// Untraced counts the flows classified end to end but not traced,
	// by state; absent when every flow was traced.
	Untraced *untracedJSON `json:"untraced,omitempty"`
	// Looked is the second look: where it traced untraced flows that
	// cross a router, and those it saw crossing and left untraced.
	Looked *lookedJSON `json:"looked,omitempty"`
	// AliasTest is the prespecified-timestamp alias test, where the
	// diagnosis could not decide without it.
	AliasTest *aliasTestJSON `json:"alias_test,omitempty"`
	// RateLimitTest is the rate-limit alias test, where the diagnosis
	// still could not decide.
	RateLimitTest *rateLimitTestJSON `json:"rate_limit_test,omitempty"`
}

type rateLimitTestJSON struct {
	Rounds   int        `json:"rounds"`
	Drained  int        `json:"drained"`
	Silenced int        `json:"silenced"`
	Groups   [][]string `json:"groups"`
}

type aliasTestJSON struct {
	Asked    int        `json:"asked"`
	Answered int        `json:"answered"`
	Honoured int        `json:"honoured"`
	Groups   [][]string `json:"groups"`
}

type lookedJSON struct {
	TTL      int          `json:"ttl"`
	Addrs    []string     `json:"addrs"`
	Untraced untracedJSON `json:"untraced"`
	// Picked and Unseen (Looked's): absent in traces recorded before
	// they were counted.
	Picked *int          `json:"picked,omitempty"`
	Unseen *untracedJSON `json:"unseen,omitempty"`
	// Sports (Looked.Ports): absent in traces recorded before they were
	// named.
	Sports []uint16 `json:"sports,omitempty"`
}

type untracedJSON struct {
	OK    int `json:"ok"`
	Fail  int `json:"fail"`
	Flaky int `json:"flaky"`
}

type traceFlowJSON struct {
	Sport      uint16         `json:"sport"`
	State      string         `json:"state"`
	Sent       int            `json:"sent"`
	Received   int            `json:"received"`
	ReachedTTL int            `json:"reached_ttl"`
	Signature  string         `json:"signature"`
	Hops       []traceHopJSON `json:"hops"`
	// Arrived counts the SYNs the responder saw (trace --responder).
	Arrived *int `json:"arrived,omitempty"`
	// ReturnHops is the return path the responder traced (trace
	// --responder, flows traced back only).
	ReturnHops []traceHopJSON `json:"return_hops,omitempty"`
}

type traceHopJSON struct {
	TTL      int      `json:"ttl"`
	Addr     *string  `json:"addr"`
	Others   []string `json:"others,omitempty"`
	RTTMS    *float64 `json:"rtt_ms"`
	Probes   int      `json:"probes"`
	Answers  int      `json:"answers"`
	Reached  bool     `json:"reached"`
	ICMPType uint8    `json:"icmp_type"`
	ICMPCode uint8    `json:"icmp_code"`
	MPLS     []uint32 `json:"mpls,omitempty"`
	// IPIDs are the routers' answers' IPv4 identifications (alias.go).
	IPIDs []idSampleJSON `json:"ipids,omitempty"`
}

// retriedJSON is the second look at rate-limited hops.
type retriedJSON struct {
	TTLs    []int `json:"ttls"`
	Holes   int   `json:"holes"`
	Rounds  int   `json:"rounds"`
	Probes  int   `json:"probes"`
	Answers int   `json:"answers"`
	Longer  bool  `json:"longer,omitempty"`
}

type idSampleJSON struct {
	Addr string `json:"addr"`
	AtUS int64  `json:"at_us"` // arrival, microseconds after the trace started
	ID   uint16 `json:"id"`
	TTL  uint8  `json:"ttl"`
}

type bucketJSON struct {
	Signature string    `json:"signature"`
	Hops      []*string `json:"hops"`
	Ports     []uint16  `json:"ports"`
	OK        int       `json:"ok"`
	Fail      int       `json:"fail"`
	Flaky     int       `json:"flaky"`
	Sent      int       `json:"sent"`
	Received  int       `json:"received"`
	Loss      float64   `json:"loss"`
	LossLow   float64   `json:"loss_low"`
	LossHigh  float64   `json:"loss_high"`
}

type diagnosisJSON struct {
	Direction    Direction        `json:"direction"`
	Suspects     []suspectJSON    `json:"suspects"`
	Hypotheses   []hypothesisJSON `json:"hypotheses"`
	Margin       *float64         `json:"margin"`
	Separate     string           `json:"separate,omitempty"`
	SharedIPID   [][]string       `json:"shared_ipid,omitempty"`
	Text         string           `json:"text"`
	ReverseTrace string           `json:"reverse_trace,omitempty"`
	ReturnPaths  *returnPathsJSON `json:"return_paths,omitempty"`
}

// returnPathsJSON is what the responder's return-path traces showed.
type returnPathsJSON struct {
	Flows          int              `json:"flows"`
	Failing        int              `json:"failing"`
	FailingReached int              `json:"failing_reached"`
	Direction      Direction        `json:"direction"`
	Hypotheses     []hypothesisJSON `json:"hypotheses"`
	Margin         *float64         `json:"margin"`
	Retried        *retriedJSON     `json:"retried,omitempty"`
	Error          string           `json:"error,omitempty"`
}

type suspectJSON struct {
	Direction Direction `json:"direction"`
	Kind      string    `json:"kind"`
	Addr      *string   `json:"addr"`
	Next      *string   `json:"next"`
	Behind    []string  `json:"behind,omitempty"`
	FirstHop  *string   `json:"first_hop,omitempty"`
	TTL       *int      `json:"ttl"`
	Evidence  string    `json:"evidence"`
	Explains  int       `json:"explains"`
	Score     int       `json:"score"`
}

type hypothesisJSON struct {
	Direction   Direction       `json:"direction"`
	Kind        HypothesisKind  `json:"kind"`
	Addr        *string         `json:"addr"`
	Next        *string         `json:"next"`
	Behind      []string        `json:"behind,omitempty"`
	TTL         *int            `json:"ttl"`
	ICMPPath    string          `json:"icmp_path,omitempty"`
	Explains    int             `json:"explains"`
	Contradicts int             `json:"contradicts"`
	Share       float64         `json:"share"`
	Score       float64         `json:"score"`
	And         *hypothesisJSON `json:"and,omitempty"`
}

// maxHypothesesJSON bounds the hypotheses a document lists.
const maxHypothesesJSON = 10

func hypothesisDoc(h Hypothesis) hypothesisJSON {
	j := hypothesisJSON{Direction: h.Direction, Kind: h.Kind, Addr: addrPtr(h.Addr), Next: addrPtr(h.Next),
		Behind: addrStrings(h.Behind), TTL: ttlPtr(h.TTL), ICMPPath: h.ICMPPath, Explains: h.Explains,
		Contradicts: h.Contradicts, Share: round4(h.Share), Score: finite(round4(h.Score))}
	if h.And != nil {
		and := hypothesisDoc(*h.And)
		j.And = &and
	}
	return j
}

func finite(x float64) float64 {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return 0
	}
	return x
}

func addrStrings(xs []netip.Addr) []string {
	var out []string
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

func ttlPtr(ttl int) *int {
	if ttl <= 0 {
		return nil
	}
	return &ttl
}

func addrPtr(a netip.Addr) *string {
	if !a.IsValid() {
		return nil
	}
	s := a.String()
	return &s
}

func suspectKind(s Suspect) string {
	switch {
	case s.Kind != "":
		return s.Kind
	case s.Next.IsValid():
		return "link"
	}
	return "hop"
}

func traceJSON(t Trace) traceDoc {
	started := ""
	if !t.Started.IsZero() {
		started = t.Started.UTC().Format(time.RFC3339Nano)
	}
	doc := traceDoc{
		SchemaVersion: SchemaVersion,
		Type:          "trace",
		Target:        jsonTarget{Host: t.Host, Addr: addrString(t.Target.Addr()), Port: t.Target.Port()},
		Source:        addrString(t.Source),
		Mode:          t.Mode,
		MaxTTL:        t.MaxTTL,
		ProbesPerHop:  t.ProbesPerHop,
		Count:         t.Count,
		NotProbed:     t.NotProbed,
		Responder:     responderJSON(t.TwoEnded),
		Started:       started,
		DurationMS:    ms(t.Duration),
		Interrupted:   t.Interrupted,
		Flows:         make([]traceFlowJSON, 0, len(t.Flows)),
		Buckets:       make([]bucketJSON, 0, len(t.Buckets)),
		Diagnosis: diagnosisJSON{
			Direction: t.Diagnosis.Direction, Text: t.Diagnosis.Text,
			Suspects: make([]suspectJSON, 0, len(t.Diagnosis.Suspects)), ReverseTrace: reverseTrace(t),
		},
	}
	if r := t.Retried; r != nil {
		doc.Retried = retriedDoc(*r)
	}
	if u := t.Untraced; u != (Untraced{}) {
		doc.Untraced = &untracedJSON{OK: u.OK, Fail: u.Fail, Flaky: u.Flaky}
	}
	if l := t.Looked; l != nil {
		doc.Looked = &lookedJSON{TTL: l.TTL, Addrs: make([]string, len(l.Addrs)), Untraced: untracedJSON(l.Untraced)}
		if u := l.Unseen; u != nil {
			doc.Looked.Picked, doc.Looked.Unseen, doc.Looked.Sports = &l.Picked, (*untracedJSON)(u), l.Ports
		}
		for i, a := range l.Addrs {
			doc.Looked.Addrs[i] = a.String()
		}
	}
	if a := t.Aliases; a != nil {
		doc.AliasTest = &aliasTestJSON{Asked: a.Asked, Answered: a.Answered, Honoured: a.Honoured, Groups: groupStrings(a.Groups)}
	}
	if l := t.RateLimits; l != nil {
		doc.RateLimitTest = &rateLimitTestJSON{Rounds: l.Rounds, Drained: l.Drained, Silenced: l.Silenced, Groups: groupStrings(l.Groups)}
	}
	doc.Gateway = addrPtr(t.Gateway)
	origin := idOrigin(t)
	for _, f := range t.Flows {
		fj := traceFlowJSON{Sport: f.Sport, State: string(f.State), Sent: f.Sent, Received: f.Received,
			ReachedTTL: f.ReachedTTL, Signature: f.Signature(), Hops: make([]traceHopJSON, 0, len(f.Hops))}
		if t.TwoEnded != nil && t.TwoEnded.Err == "" {
			n := t.TwoEnded.Arrived[f.Sport]
			fj.Arrived = &n
		}
		fj.Hops = hopsJSON(f.Hops, origin)
		if len(f.ReturnHops) > 0 {
			fj.ReturnHops = hopsJSON(f.ReturnHops, origin)
		}
		doc.Flows = append(doc.Flows, fj)
	}
	for _, b := range t.Buckets {
		bj := bucketJSON{Signature: b.Signature, Hops: make([]*string, 0, len(b.Hops)), Ports: b.Ports,
			OK: b.OK, Fail: b.Fail, Flaky: b.Flaky, Sent: b.Sent, Received: b.Received,
			Loss: round4(b.Loss), LossLow: round4(b.LossLow), LossHigh: round4(b.LossHigh)}
		if bj.Ports == nil {
			bj.Ports = []uint16{}
		}
		for _, h := range b.Hops {
			bj.Hops = append(bj.Hops, addrPtr(h))
		}
		doc.Buckets = append(doc.Buckets, bj)
	}
	for _, s := range t.Diagnosis.Suspects {
		doc.Diagnosis.Suspects = append(doc.Diagnosis.Suspects, suspectJSON{
			Direction: s.Direction, Kind: suspectKind(s), Addr: addrPtr(s.Addr), Next: addrPtr(s.Next), Behind: addrStrings(s.Behind),
			FirstHop: addrPtr(s.FirstHop), TTL: ttlPtr(s.TTL), Evidence: s.Evidence, Explains: s.Explains, Score: s.Score})
	}
	doc.Diagnosis.Hypotheses = []hypothesisJSON{}
	for i, h := range t.Diagnosis.Hypotheses {
		if i == maxHypothesesJSON {
			break
		}
		doc.Diagnosis.Hypotheses = append(doc.Diagnosis.Hypotheses, hypothesisDoc(h))
	}
	if m := t.Diagnosis.Margin; len(t.Diagnosis.Hypotheses) > 0 && !math.IsInf(m, 0) && !math.IsNaN(m) {
		v := round4(m)
		doc.Diagnosis.Margin = &v
	}
	doc.Diagnosis.Separate = t.Diagnosis.Separate
	for _, g := range t.Diagnosis.SharedIPID {
		doc.Diagnosis.SharedIPID = append(doc.Diagnosis.SharedIPID, addrStrings(g))
	}
	doc.Diagnosis.ReturnPaths = returnPathsDoc(t.Diagnosis.Return)
	return doc
}

// idOrigin is the time the samples' arrivals are counted from: the
// trace's start, or without one the first sample's arrival.
func idOrigin(t Trace) time.Time {
	if !t.Started.IsZero() {
		return t.Started
	}
	var first time.Time
	for _, f := range t.Flows {
		for _, h := range slices.Concat(f.Hops, f.ReturnHops) {
			for _, s := range h.IDs {
				if first.IsZero() || s.At.Before(first) {
					first = s.At
				}
			}
		}
	}
	return first
}

func hopsJSON(hops []TraceHop, origin time.Time) []traceHopJSON {
	out := make([]traceHopJSON, 0, len(hops))
	for i, h := range hops {
		ttl := h.TTL
		if ttl == 0 {
			ttl = i + 1
		}
		hj := traceHopJSON{TTL: ttl, Addr: addrPtr(h.Addr), Probes: h.Probes, Answers: h.Answers,
			Reached: h.Reached, ICMPType: h.ICMPType, ICMPCode: h.ICMPCode, MPLS: h.MPLS}
		for _, o := range h.Others {
			hj.Others = append(hj.Others, o.String())
		}
		for _, s := range h.IDs {
			hj.IPIDs = append(hj.IPIDs, idSampleJSON{Addr: s.Addr.String(), AtUS: s.At.Sub(origin).Microseconds(), ID: s.ID, TTL: s.TTL})
		}
		if h.Addr.IsValid() {
			v := ms(h.RTT)
			hj.RTTMS = &v
		}
		out = append(out, hj)
	}
	return out
}

func retriedDoc(r Retried) *retriedJSON {
	return &retriedJSON{TTLs: r.TTLs, Holes: r.Holes, Rounds: r.Rounds, Probes: r.Probes, Answers: r.Answers, Longer: r.Longer}
}

func returnPathsDoc(rp *ReturnPaths) *returnPathsJSON {
	if rp == nil {
		return nil
	}
	j := &returnPathsJSON{Flows: rp.Flows, Failing: rp.Failing, FailingReached: rp.FailingReached, Direction: rp.Direction,
		Hypotheses: []hypothesisJSON{}, Error: rp.Err}
	if rp.Retried != nil {
		j.Retried = retriedDoc(*rp.Retried)
	}
	for i, h := range rp.Hypotheses {
		if i == maxHypothesesJSON {
			break
		}
		j.Hypotheses = append(j.Hypotheses, hypothesisDoc(h))
	}
	if m := rp.Margin; len(rp.Hypotheses) > 0 && !math.IsInf(m, 0) && !math.IsNaN(m) {
		v := round4(m)
		j.Margin = &v
	}
	return j
}

// reverseTrace is the command that traces a return fault from the server
// side: toward the client, with the first failing flow's tuple reversed.
func reverseTrace(t Trace) string {
	if t.Diagnosis.Direction != DirectionReturn || t.Diagnosis.Return != nil {
		return "" // not a return fault, or the responder traced it back already
	}
	for _, f := range t.Flows {
		if f.State != hash.StateFail {
			continue
		}
		client := "CLIENT:" + strconv.Itoa(int(f.Sport))
		if t.Source.IsValid() {
			client = netip.AddrPortFrom(t.Source, f.Sport).String()
		}
		return fmt.Sprintf("ecmpscan trace %s --sport %d", client, t.Target.Port())
	}
	return ""
}

// hopCount is one row of the path map: an address (or "*", or the
// destination) at one TTL and the flows that saw it.
type hopCount struct {
	addr                  netip.Addr
	silent, reached       bool
	flows, fail, ok, flky int
}

// pathMap counts, per TTL, the flows by the hop that answered.
func pathMap(flows []FlowTrace) [][]hopCount {
	var out [][]hopCount
	for _, f := range flows {
		for i, h := range f.Hops {
			for len(out) <= i {
				out = append(out, nil)
			}
			row := &out[i]
			j := slices.IndexFunc(*row, func(c hopCount) bool {
				return c.reached == h.Reached && c.silent == !h.Addr.IsValid() && (c.silent || c.addr == h.Addr)
			})
			if j < 0 {
				*row = append(*row, hopCount{addr: h.Addr, silent: !h.Addr.IsValid(), reached: h.Reached})
				j = len(*row) - 1
			}
			c := &(*row)[j]
			c.flows++
			switch f.State {
			case hash.StateFail:
				c.fail++
			case hash.StateOK:
				c.ok++
			case hash.StateFlaky:
				c.flky++
			}
			if h.Reached {
				break
			}
		}
	}
	for _, row := range out {
		slices.SortFunc(row, func(x, y hopCount) int {
			rank := func(c hopCount) int {
				switch {
				case c.reached:
					return 1
				case c.silent:
					return 2
				}
				return 0
			}
			return cmp.Or(cmp.Compare(rank(x), rank(y)), x.addr.Compare(y.addr))
		})
	}
	return out
}

// tracedFlowsText counts the traced flows, and the classified ones they
// were picked from when not every one was traced.
func tracedFlowsText(t Trace) string {
	n := len(t.Flows)
	u := t.Untraced
	if u == (Untraced{}) {
		return fmt.Sprintf("%d %s", n, plural(n, "flow", "flows"))
	}
	text := fmt.Sprintf("%d of %d flows traced, failing ones first", n, n+u.OK+u.Fail+u.Flaky)
	if l := t.Looked; l != nil {
		text += fmt.Sprintf(" and then more through %s at TTL %d (a second look)", addrList(l.Addrs, 2), l.TTL)
	}
	return text
}

func traceText(t Trace, opt Options) string {
	var b strings.Builder
	p := painter{opt.Color}
	d := t.Diagnosis
	if !opt.Quiet {
		fmt.Fprintf(&b, "ecmpscan trace %s from %s: %s mode, %s, max TTL %d, %d probes per hop, %d end-to-end probes per flow\n\n",
			t.Target, addrString(t.Source), t.Mode, tracedFlowsText(t), t.MaxTTL, t.ProbesPerHop, t.Count)
		writeHopMap(&b, t.Flows, t.Diagnosis.Suspects, "destination", p)
		b.WriteString("\n")
		if back := ReturnFlows(t.Flows); len(back) > 0 {
			b.WriteString("return paths, traced from the responder toward the client:\n")
			writeHopMap(&b, back, t.Diagnosis.Suspects, "client", p)
			b.WriteString("\n")
		}
		writeBuckets(&b, t.Buckets, p)
		if r := t.Retried; r != nil {
			b.WriteString(retriedText(*r) + "\n")
		}
		if t.Interrupted {
			b.WriteString("interrupted: partial result\n")
		}
	}
	fmt.Fprintf(&b, "diagnosis: %s: %s\n", paintDirection(p, d.Direction), d.Text)
	if opt.Quiet {
		return b.String()
	}
	if len(d.Suspects) > 0 {
		b.WriteString("suspects (most likely first):\n")
		for i, s := range d.Suspects {
			fmt.Fprintf(&b, "  %d. %s %s (explains %d)\n     %s\n", i+1, s.Direction, p.paint("1", suspectName(s)), s.Explains, s.Evidence)
		}
	}
	if len(d.SharedIPID) > 0 {
		b.WriteString("one router each, by the IP ID counter their answers share:\n")
		for _, g := range d.SharedIPID {
			fmt.Fprintf(&b, "  %s\n", addrList(g, 8))
		}
	}
	if a := t.Aliases; a != nil {
		b.WriteString(aliasTestText(*a))
	}
	if l := t.RateLimits; l != nil {
		b.WriteString(rateLimitTestText(*l))
	}
	if cmd := reverseTrace(t); cmd != "" {
		fmt.Fprintf(&b, "reverse trace, to run on %s:\n  %s\n", addrString(t.Target.Addr()), cmd)
	}
	return b.String()
}

func suspectName(s Suspect) string {
	switch s.Kind {
	case "member":
		if len(s.Behind) == 0 && s.FirstHop.IsValid() {
			return fmt.Sprintf("unseen member at TTL %d behind the first hop %s (%s gateway; it answered no probe)", s.TTL, s.FirstHop, gatewayOf(s))
		}
		return fmt.Sprintf("unseen member at TTL %d behind %s", s.TTL, addrList(s.Behind, 4))
	case "return-member":
		return fmt.Sprintf("stage at TTL %d on the way back (a member or its link toward the client)", s.TTL)
	case "return-link":
		return fmt.Sprintf("link toward the client into the stage at TTL %d", s.TTL)
	case "return-path":
		return "path back (answers lost on the way back, or the target)"
	}
	if s.Next.IsValid() {
		return fmt.Sprintf("link %s -> %s", addrOrStar(s.Addr), s.Next)
	}
	switch {
	case s.FirstHop.IsValid() && s.TTL <= 1:
		return fmt.Sprintf("first hop %s (%s gateway; it answered no probe)", s.FirstHop, gatewayOf(s))
	case s.FirstHop.IsValid():
		return fmt.Sprintf("hop at TTL %d behind the first hop %s (%s gateway; it answered no probe)", s.TTL, s.FirstHop, gatewayOf(s))
	}
	return "hop " + addrOrStar(s.Addr)
}

// gatewayOf says whose gateway a suspect's first hop is: a return suspect
// sits on a return path, traced from the target.
func gatewayOf(s Suspect) string {
	if s.Direction == DirectionReturn {
		return "the target's"
	}
	return "this host's"
}

func paintDirection(p painter, d Direction) string {
	switch d {
	case DirectionForward, DirectionReturn:
		return p.paint("1;31", string(d))
	case DirectionNone:
		return p.paint("32", string(d))
	}
	return p.paint("33", string(d))
}

// writeHopMap writes the flows' hops TTL by TTL, marking the suspects;
// end names what answers at the end (the destination, or the client).
func writeHopMap(b *strings.Builder, flows []FlowTrace, suspects []Suspect, end string, p painter) {
	marks := map[netip.Addr]string{}
	for i, s := range suspects {
		for _, x := range []netip.Addr{s.Addr, s.Next} {
			if x.IsValid() {
				if _, ok := marks[x]; !ok {
					marks[x] = "suspect " + strconv.Itoa(i+1)
				}
			}
		}
	}
	rows := pathMap(flows)
	width := len("HOP")
	for _, row := range rows {
		for _, c := range row {
			width = max(width, len(hopLabel(c, end)))
		}
	}
	fmt.Fprintf(b, "%3s  %-*s  %5s  %4s\n", "TTL", width, "HOP", "FLOWS", "FAIL")
	for i, row := range rows {
		for j, c := range row {
			ttl := ""
			if j == 0 {
				ttl = strconv.Itoa(i + 1)
			}
			label := fmt.Sprintf("%-*s", width, hopLabel(c, end))
			if c.silent {
				label = p.paint("2", label)
			}
			fail := fmt.Sprintf("%4d", c.fail)
			if c.fail > 0 {
				fail = p.state(hash.StateFail, fail)
			}
			line := fmt.Sprintf("%3s  %s  %5d  %s", ttl, label, c.flows, fail)
			if m, ok := marks[c.addr]; ok && !c.silent && !c.reached {
				line += "  <- " + p.paint("1;31", m)
			}
			b.WriteString(line + "\n")
		}
	}
}

func hopLabel(c hopCount, end string) string {
	switch {
	case c.silent:
		return "*"
	case c.reached:
		return c.addr.String() + " (" + end + ")"
	}
	return c.addr.String()
}

func writeBuckets(b *strings.Builder, buckets []PathBucket, p painter) {
	if len(buckets) == 0 {
		return
	}
	b.WriteString("paths (flows by forward path; loss of end-to-end probes with 95% interval):\n")
	fmt.Fprintf(b, "%5s  %5s  %5s  %-22s  %s\n", "OK", "FAIL", "FLAKY", "LOSS", "PATH / PORTS")
	for _, k := range buckets {
		loss := fmt.Sprintf("%5.1f%% [%.1f-%.1f%%]", 100*k.Loss, 100*k.LossLow, 100*k.LossHigh)
		if k.Sent == 0 {
			loss = "-"
		}
		fail := fmt.Sprintf("%5d", k.Fail)
		if k.Fail > 0 {
			fail = p.state(hash.StateFail, fail)
		}
		flaky := fmt.Sprintf("%5d", k.Flaky)
		if k.Flaky > 0 {
			flaky = p.state(hash.StateFlaky, flaky)
		}
		sig := k.Signature
		if sig == "" {
			sig = "(no hop)"
		}
		fmt.Fprintf(b, "%5d  %s  %s  %-22s  %s\n", k.OK, fail, flaky, loss, sig)
		fmt.Fprintf(b, "%45s%s\n", "ports ", abbreviate(PortRanges(k.Ports), 200))
	}
	b.WriteString("\n")
}

// ttlsAnd reads "1, 2 and 4".
func ttlsAnd(ttls []int) string {
	out := make([]string, len(ttls))
	for i, t := range ttls {
		out[i] = strconv.Itoa(t)
	}
	return joinAnd(out)
}

// retriedText says which hops rate-limit and what probing them again gave.
func retriedText(r Retried) string {
	found := fmt.Sprintf("rate-limited: the routers at TTL %s answered only some of the probes of most healthy flows' hops, as routers that "+
		"rate-limit their ICMP errors do (Linux by default: a burst of 6 per destination, then one a second); ", ttlsAnd(r.TTLs))
	hops := fmt.Sprintf("%d silent %s", r.Holes, plural(r.Holes, "hop", "hops"))
	if r.Rounds == 0 {
		return found + "their " + hops + " were not probed again (--patience 0), and silence there says little"
	}
	longer := ""
	if r.Longer {
		longer = ", for as long again when the first rounds could not decide"
	}
	return found + fmt.Sprintf("%s probed again in %d %s a second apart%s: %d answered. Silence there says little (more --patience, "+
		"fewer flows, or a higher net.ipv4.icmp_ratelimit on the routers tells more)",
		hops, r.Rounds, plural(r.Rounds, "round", "rounds"), longer, r.Answers)
}

// aliasTestText says what the alias test asked and found.
func aliasTestText(a AliasTest) string {
	text := fmt.Sprintf("alias test (prespecified IPv4 timestamps): %d asked, %d answered, %d stamped by the router asked",
		a.Asked, a.Answered, a.Honoured)
	return text + groupsText(a.Groups, "a router that ignores the option proves nothing")
}

// rateLimitTestText says what the rate-limit alias test drained and found.
func rateLimitTestText(l RateLimitTest) string {
	text := fmt.Sprintf("alias test (ICMP rate limits): %d %s, %d drained a router's budget, %d silenced the other address",
		l.Rounds, plural(l.Rounds, "round", "rounds"), l.Drained, l.Silenced)
	return text + groupsText(l.Groups, "a router that does not rate-limit, or limits generously, proves nothing")
}

// groupsText lists an alias test's groups, or says none was found and
// why that proves nothing.
func groupsText(groups [][]netip.Addr, why string) string {
	if len(groups) == 0 {
		return "; no addresses found to be one router's (" + why + ")\n"
	}
	text := "; one router each:\n"
	for _, g := range groups {
		text += "  " + addrList(g, 8) + "\n"
	}
	return text
}

// groupStrings are alias groups as JSON strings, [] for none.
func groupStrings(groups [][]netip.Addr) [][]string {
	out := [][]string{}
	for _, g := range groups {
		out = append(out, addrStrings(g))
	}
	return out
}
