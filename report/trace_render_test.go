package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

func traceOf(flows []FlowTrace, maxTTL int) Trace {
	return Trace{
		Host: "db-vip", Target: target, Source: src, Mode: "raw", MaxTTL: maxTTL, ProbesPerHop: 3, Count: 3,
		Started: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Duration: 812500 * time.Microsecond,
		Flows: flows, Buckets: BucketPaths(flows), Diagnosis: Diagnose(flows),
	}
}

// linkTrace: a 2x2 two-tier fabric whose link p1 -> q2 drops everything.
func linkTrace() Trace {
	l := newLab(2, 2, false)
	l.maxTTL = 6
	return traceOf(l.flows(12, linkDrop("p1", "q2")), 6)
}

// returnTrace: a one-tier fabric, silent p2, where the answers of some flows
// are lost on the way back; one flow is flaky.
func returnTrace() Trace {
	l := newLab(2, 0, false, "p2")
	l.maxTTL = 5
	fs := withReturnFault(l, 6)
	fs[0].State, fs[0].Received = hash.StateFlaky, 2
	return traceOf(fs, 5)
}

// twoEndedTrace: the return fault of returnTrace, traced with a responder
// at the server: every failing flow's SYNs arrived, and the responder
// traced the flows back. The failing flows' answers ride return member b2,
// which loses them.
func twoEndedTrace() Trace {
	const r2, b1, b2, r1 = "198.18.254.1", "198.18.254.11", "198.18.254.12", "198.18.255.1"
	tr := returnTrace()
	tr.TwoEnded = &TwoEnded{Responder: "198.18.2.2:7000", Arrived: map[uint16]int{}, TTL: map[uint16]uint8{}}
	arrived := map[uint16]bool{}
	for i := range tr.Flows {
		f := &tr.Flows[i]
		tr.TwoEnded.Arrived[f.Sport], tr.TwoEnded.TTL[f.Sport], arrived[f.Sport] = 3, 61, true
		back := flowOf(f.Sport, f.State, r2, b1, r1, "=")
		back.Hops[3].Addr = src // the client answers (its RST)
		if f.State == hash.StateFail {
			back = flowOf(f.Sport, f.State, r2, b2, "*", "*")
		}
		f.ReturnHops = back.Hops
	}
	tr.Diagnosis = WithReturnPaths(DiagnoseSample(tr.Flows, Sample{Arrived: arrived}), DiagnoseReturnPaths(tr.Flows, netip.Addr{}))
	return tr
}

// smallForward exercises every JSON field: Others, MPLS, unreachable codes,
// a flaky flow and an interrupted run.
func smallForward() Trace {
	const r1, p1, p2, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.99"
	flows := []FlowTrace{
		flowOf(30000, hash.StateOK, r1, p1, r2, "="),
		flowOf(30001, hash.StateFail, r1, "*", "*", "*"),
		flowOf(30002, hash.StateOK, r1, p2, r2, "="),
		flowOf(30003, hash.StateFlaky, r1, p1, r2, "="),
	}
	flows[0].Hops[1].Others = []netip.Addr{netip.MustParseAddr("198.19.1.2")}
	flows[0].Hops[1].MPLS = []uint32{16001} // a 20-bit label
	flows[2].Hops[1].Answers = 2
	for i := range flows {
		for j := range flows[i].Hops {
			if flows[i].Hops[j].Addr.IsValid() {
				flows[i].Hops[j].RTT = time.Duration(150*(j+1)) * time.Microsecond
			}
		}
	}
	tr := traceOf(flows, 4)
	tr.Interrupted = true
	return tr
}

func TestRenderTraceGolden(t *testing.T) {
	link, ret, small, two := linkTrace(), returnTrace(), smallForward(), twoEndedTrace()
	cases := []struct {
		name   string
		trace  Trace
		format Format
		opt    Options
	}{
		{"valid-trace-link.txt", link, FormatTable, Options{}},
		{"valid-trace-link-color.txt", link, FormatTable, Options{Color: true}},
		{"valid-trace-link-quiet.txt", link, FormatTable, Options{Quiet: true}},
		{"valid-trace-link.dot", link, FormatDOT, Options{}},
		{"valid-trace-return.txt", ret, FormatTable, Options{}},
		{"valid-trace-return.json", ret, FormatJSON, Options{}},
		{"valid-trace-return.dot", ret, FormatDOT, Options{}},
		{"valid-trace-small.json", small, FormatJSON, Options{}},
		{"valid-trace-small.txt", small, FormatTable, Options{}},
		{"valid-trace-two-ended.txt", two, FormatTable, Options{}},
		{"valid-trace-two-ended.json", two, FormatJSON, Options{}},
		{"valid-trace-ipid.txt", sharedIPIDTrace(t), FormatTable, Options{}},
		{"valid-trace-retried.txt", retriedTrace(), FormatTable, Options{}},
		{"valid-trace-retried.json", retriedTrace(), FormatJSON, Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderTrace(&buf, c.format, c.trace, c.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, buf.String())
		})
	}
}

// retriedTrace is returnTrace where the routers at TTL 1 and 2 rate-limit
// their errors, and their silent hops were probed again.
func retriedTrace() Trace {
	tr := returnTrace()
	tr.Retried = &Retried{TTLs: []int{1, 2}, Holes: 40, Rounds: 10, Probes: 60, Answers: 22}
	return tr
}

// sharedIPIDTrace is a lab trace of routers that share an IP ID counter
// each (valid-trace-ipid.json, read back and diagnosed again).
func sharedIPIDTrace(t *testing.T) Trace {
	tr := testdataTrace(t, "valid-trace-ipid.json")
	tr.Diagnosis = Diagnose(tr.Flows)
	return tr
}

// testdataTrace reads a trace document of testdata back.
func testdataTrace(t *testing.T, name string) Trace {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := DecodeTrace(data)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestRenderTraceJSONContract(t *testing.T) {
	for _, tr := range []Trace{linkTrace(), returnTrace(), smallForward(), traceOf(nil, 8)} {
		var buf bytes.Buffer
		if err := RenderTrace(&buf, FormatJSON, tr, Options{}); err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"schema_version", "target", "source", "mode", "max_ttl", "probes_per_hop", "flows", "buckets", "diagnosis", "interrupted", "duration_ms"} {
			if _, ok := doc[k]; !ok {
				t.Errorf("no key %q", k)
			}
		}
		if _, ok := doc["flows"].([]any); !ok {
			t.Errorf("flows is %T, want a list", doc["flows"])
		}
		if _, ok := doc["buckets"].([]any); !ok {
			t.Errorf("buckets is %T, want a list", doc["buckets"])
		}
		diag := doc["diagnosis"].(map[string]any)
		if _, ok := diag["hypotheses"].([]any); !ok {
			t.Errorf("hypotheses is %T, want a list", diag["hypotheses"])
		}
		sus, ok := diag["suspects"].([]any)
		if !ok {
			t.Fatalf("suspects is %T, want a list", diag["suspects"])
		}
		for _, s := range sus {
			s := s.(map[string]any)
			if _, ok := s["next"]; !ok {
				t.Error("suspect without next")
			}
			if (s["next"] != nil) != (s["kind"] == "link") {
				t.Errorf("kind %v with next %v", s["kind"], s["next"])
			}
			if s["direction"] == "return" && s["addr"] != nil {
				t.Errorf("a return suspect with an address: %v", s)
			}
		}
		if diag["direction"] == "return" && !strings.Contains(diag["reverse_trace"].(string), "ecmpscan trace 198.18.1.1:") {
			t.Errorf("reverse_trace %v", diag["reverse_trace"])
		}
	}
}

func TestRenderTraceDOT(t *testing.T) {
	var buf bytes.Buffer
	tr := linkTrace()
	if err := RenderTrace(&buf, FormatDOT, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	s := tr.Diagnosis.Suspects[0]
	for _, w := range []string{"digraph ecmpscan_trace {", `"source"`, `"destination"`, `label="*"`,
		`"` + s.Addr.String() + `" -> "` + s.Next.String() + `" [label="suspect 1", color=red`} {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in\n%s", w, out)
		}
	}
	if strings.Count(out, "{") != strings.Count(out, "}") || !strings.HasSuffix(out, "}\n") {
		t.Error("unbalanced graph")
	}
	var again bytes.Buffer
	_ = RenderTrace(&again, FormatDOT, tr, Options{})
	if again.String() != out {
		t.Error("DOT output is not deterministic")
	}
}

func TestParseTraceFormat(t *testing.T) {
	for _, ok := range []string{"table", "json", "dot"} {
		if f, err := ParseTraceFormat(ok); err != nil || string(f) != ok {
			t.Errorf("ParseTraceFormat(%q) = %q, %v", ok, f, err)
		}
	}
	for _, bad := range []string{"csv", "jsonl", "xml", ""} {
		if _, err := ParseTraceFormat(bad); err == nil {
			t.Errorf("ParseTraceFormat(%q) succeeded", bad)
		}
	}
	if err := RenderTrace(&bytes.Buffer{}, FormatCSV, Trace{}, Options{}); err == nil {
		t.Error("RenderTrace(csv) succeeded")
	}
}

// In a return diagnosis the suspects are the forward ones of the minority
// of failing flows: the text says so instead of presenting them as the
// culprit.
func TestRenderTraceSuspectsNameTheirDirection(t *testing.T) {
	tr := Trace{Target: target, Source: src, Mode: "raw", Diagnosis: Diagnosis{
		Direction: DirectionReturn, Text: "the fault is on the way back",
		Suspects: []Suspect{{Direction: DirectionForward, Addr: netip.MustParseAddr("198.18.255.1"), Evidence: "2 failing flows die after it", Score: 2}},
	}}
	var b bytes.Buffer
	if err := RenderTrace(&b, FormatTable, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); !strings.Contains(got, "1. forward hop 198.18.255.1") {
		t.Errorf("return diagnosis text:\n%s", got)
	}
}
