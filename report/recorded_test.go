package report

import (
	"compress/gzip"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Traces recorded on lab fabrics (make accuracy with ECMPSCAN_RECORD=DIR):
// real kernels' answers, with what the kernel's oracle says is wrong. They
// pin the diagnosis on evidence that was not made up for a unit test.

// recordedTrace is one file of testdata/recorded (internal/e2e writes it).
type recordedTrace struct {
	Fabric string            `json:"fabric"`
	Want   Direction         `json:"want"`
	At     string            `json:"at"`
	Before string            `json:"before"`
	Nodes  map[string]string `json:"nodes"`
	Trace  json.RawMessage   `json:"trace"`
	// Sample is how the traced flows were picked from a sweep's (sweep
	// --trace); absent when every flow was traced.
	Sample *struct{ Fail, OK float64 } `json:"sample"`
}

// knownMisses are the recorded fabrics whose one-ended diagnosis is known
// to be wrong or unknown, and why. The test fails when one of them comes
// out right, so the list cannot go stale.
var knownMisses = map[string]string{
	"demo-w4x3-s5-blackhole-ret-q2-sweep-trace":                  "the last router's per-link addresses lack the lost one; an unseen member beside them fits",
	"demo-w4x3-s5-blackhole-ret-q2-trace":                        "the same, a tie",
	"w10x0-s2781412125-outgoing-flow-link-oneway-r2-p1":          "a return link is charged a member's prior",
	"w6x0-s3881208320-outgoing-flow-link-oneway-r2-p2":           "a return link is charged a member's prior",
	"w6x0-s703735440-outgoing-flow-link-oneway-r2-p1":            "a return link is charged a member's prior",
	"w7x0-s992390075-outgoing-flow-link-oneway-r2-p3-v6":         "a return link is charged a member's prior",
	"w4x0-s4274395608-inbound-flow-link-oneway-r2-p4-v6":         "a return link is charged a member's prior",
	"w14x0-s516578998-inbound-fixed-link-drop-r1-p14-v6":         "a link dead both ways, 6 flows lost on the way back and 1 on the way out",
	"w3x5-s116708630-inbound-flow-blackhole-ret-q5-silent-q1-v6": "unknown within 10 to 1",
	"w4x2-s2377445724-outgoing-flow-blackhole-ret-q2":            "unknown within 10 to 1",
	"w6x0-s695990163-outgoing-flow-blackhole-ret-p1":             "unknown within 10 to 1",
	"w4x5-s95048121-router-id-fixed-blackhole-fwd-q5":            "unknown within 10 to 1",
}

func loadRecorded(t *testing.T) map[string]recordedTrace {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "recorded", "*.json.gz"))
	if len(files) == 0 {
		t.Fatal("no recorded traces in testdata/recorded")
	}
	out := map[string]recordedTrace{}
	for _, file := range files {
		r, err := readRecorded(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[strings.TrimSuffix(filepath.Base(file), ".json.gz")] = r
	}
	return out
}

func readRecorded(file string) (recordedTrace, error) {
	var r recordedTrace
	fh, err := os.Open(file)
	if err != nil {
		return r, err
	}
	defer fh.Close()
	z, err := gzip.NewReader(fh)
	if err != nil {
		return r, err
	}
	err = json.NewDecoder(z).Decode(&r)
	return r, err
}

// TestRecordedTraces diagnoses every recorded trace from one end and checks
// the direction, and for a forward fault the first suspect, against the
// oracle's.
func TestRecordedTraces(t *testing.T) {
	recs := loadRecorded(t)
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	slices.Sort(names)
	right := 0
	for _, name := range names {
		r := recs[name]
		tr, err := DecodeTrace(r.Trace)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := DiagnoseSample(tr.Flows, r.sample())
		why := r.check(d)
		miss, known := knownMisses[name]
		switch {
		case why == "" && known:
			t.Errorf("%s is right now (%s): take it off knownMisses (%s)", name, d.Direction, miss)
		case why != "" && !known:
			t.Errorf("%s (%s): %s\n%s", name, r.Fabric, why, d.Text)
		case why == "":
			right++
		}
	}
	t.Logf("%d of %d recorded fabrics right from one end", right, len(names))
}

func (r recordedTrace) sample() Sample {
	if r.Sample == nil {
		return Sample{}
	}
	return Sample{Fail: r.Sample.Fail, OK: r.Sample.OK}
}

// check says what is wrong with a diagnosis, "" when nothing is: the
// direction, and for a forward fault the first suspect (the faulty router
// or link, the router before it, or an unseen member behind those).
func (r recordedTrace) check(d Diagnosis) string {
	if d.Direction != r.Want {
		return fmt.Sprintf("direction %s, want %s", d.Direction, r.Want)
	}
	if r.Want != DirectionForward {
		return ""
	}
	if len(d.Suspects) == 0 {
		return "no suspect"
	}
	s := d.Suspects[0]
	node := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return r.Nodes[a.String()]
	}
	preds := r.predecessors()
	from, next := node(s.Addr), node(s.Next)
	if s.Direction == DirectionForward && (from == r.At || next == r.At || slices.Contains(preds, from)) {
		return ""
	}
	for _, b := range s.Behind {
		if !s.Addr.IsValid() && slices.Contains(preds, node(b)) {
			return ""
		}
	}
	return fmt.Sprintf("first suspect %s %s (%s) -> %s (%s) behind %v, want %s (before %v)",
		s.Direction, s.Addr, from, s.Next, next, s.Behind, r.At, preds)
}

// predecessors are the lab routers right before the faulty one.
func (r recordedTrace) predecessors() []string {
	switch {
	case r.Before != "":
		return []string{r.Before}
	case strings.HasPrefix(r.At, "p"):
		return []string{"r1"}
	case strings.HasPrefix(r.At, "q"):
		var ps []string
		for i := 1; i <= 16; i++ {
			ps = append(ps, fmt.Sprintf("p%d", i))
		}
		return ps
	}
	return nil
}
