package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// traceFlowsJSON is the flows part of a trace document, as written.
func traceFlowsJSON(t *testing.T, data []byte) []traceFlowJSON {
	t.Helper()
	var doc traceDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Flows
}

// A trace document read back and written again has the same flows, and
// diagnosed again the same verdict.
func TestDecodeTraceReadsWhatRenderWrites(t *testing.T) {
	for _, name := range []string{"valid-trace-return.json", "valid-trace-small.json", "valid-trace-two-ended.json", "valid-trace-ipid.json", "valid-trace-alias-test.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := DecodeTrace(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var buf bytes.Buffer
		if err := RenderTrace(&buf, FormatJSON, tr, Options{}); err != nil {
			t.Fatal(err)
		}
		if got, want := traceFlowsJSON(t, buf.Bytes()), traceFlowsJSON(t, data); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the flows written again differ:\n got %+v\nwant %+v", name, got, want)
		}
		var doc traceDoc
		_ = json.Unmarshal(data, &doc)
		if d := DiagnoseSample(tr.Flows, tr.Sample()); tr.TwoEnded == nil && d.Direction != doc.Diagnosis.Direction {
			t.Errorf("%s: diagnosed again %s, the document says %s", name, d.Direction, doc.Diagnosis.Direction)
		}
	}
}

// roundTrip renders a trace as JSON, checks it against the schema, reads
// it back, and renders its text.
func roundTrip(t *testing.T, tr Trace) (Trace, *bytes.Buffer) {
	t.Helper()
	var buf, text bytes.Buffer
	if err := RenderTrace(&buf, FormatJSON, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(schematest.Trace, buf.Bytes()); err != nil {
		t.Errorf("the document breaks its schema: %v", err)
	}
	got, err := DecodeTrace(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if err := RenderTrace(&text, FormatTable, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	return got, &text
}

// The flows classified but not traced survive the document, and weigh
// the traced ones back.
func TestDecodeTraceUntraced(t *testing.T) {
	tr := Trace{Target: netip.MustParseAddrPort("198.18.2.2:3306"), Source: netip.MustParseAddr("198.18.1.1"), Mode: "raw",
		MaxTTL: 4, ProbesPerHop: 2, Count: 3, Untraced: Untraced{OK: 90, Fail: 4, Flaky: 2},
		Flows: []FlowTrace{{Sport: 1, State: "fail", Sent: 3}, {Sport: 2, State: "fail", Sent: 3}, {Sport: 3, State: "ok", Sent: 3, Received: 3}}}
	tr.Diagnosis = DiagnoseSample(tr.Flows, tr.Sample())
	got, text := roundTrip(t, tr)
	if head := "raw mode, 3 of 99 flows traced, failing ones first,"; !strings.Contains(text.String(), head) {
		t.Errorf("the text does not say %q:\n%s", head, text.String())
	}
	if got.Untraced != tr.Untraced {
		t.Errorf("untraced read back as %+v, want %+v", got.Untraced, tr.Untraced)
	}
	// 2 failing traced of 6, 1 healthy of 91.
	if s := got.Sample(); s.Fail != 3 || s.OK != 91 {
		t.Errorf("sample %+v, want each failing flow for 3 and the healthy one for 91", s)
	}
	if s := WeighBack(tr.Flows, Untraced{}, nil); s.Fail != 1 || s.OK != 1 {
		t.Errorf("every flow traced: sample %+v, want 1 and 1", s)
	}
}

// A second look round-trips, and weighs the flows that crossed its place
// by their own untraced ones: 1 healthy traced of 4 through pA, 2 of 9
// elsewhere; the failing flow is pA's only, its untraced kin go with it.
func TestDecodeTraceLooked(t *testing.T) {
	const r1, pA, pB = "198.19.0.1", "198.19.1.2", "198.19.2.2"
	tr := Trace{Target: netip.MustParseAddrPort("198.18.2.2:3306"), Source: netip.MustParseAddr("198.18.1.1"), Mode: "raw",
		MaxTTL: 4, ProbesPerHop: 2, Count: 3, Untraced: Untraced{OK: 10, Fail: 2},
		Looked: &Looked{Look: Look{TTL: 2, Addrs: []netip.Addr{netip.MustParseAddr(pA)}}, Untraced: Untraced{OK: 3}},
		Flows: []FlowTrace{flowOf(1, hash.StateFail, r1, pA, "*"), flowOf(2, hash.StateOK, r1, pA, "="),
			flowOf(3, hash.StateOK, r1, pB, "="), flowOf(4, hash.StateOK, r1, pB, "=")}}
	tr.Diagnosis = DiagnoseSample(tr.Flows, tr.Sample())
	got, text := roundTrip(t, tr)
	if l := got.Looked; l == nil || l.TTL != 2 || !slices.Equal(l.Addrs, tr.Looked.Addrs) || l.Untraced != tr.Looked.Untraced {
		t.Fatalf("looked read back as %+v, want %+v", l, tr.Looked)
	}
	if head := "4 of 16 flows traced, failing ones first and then more through 198.19.1.2 at TTL 2 (a second look),"; !strings.Contains(text.String(), head) {
		t.Errorf("the text does not say %q:\n%s", head, text.String())
	}
	s := got.Sample()
	if want := map[uint16]float64{1: 3, 2: 4}; s.OK != 4.5 || !maps.Equal(s.Weight, want) {
		t.Errorf("sample %+v, want healthy flows elsewhere for 4.5 and weights %v", s, want)
	}
	if d := DiagnoseSample(got.Flows, s); d.Direction != tr.Diagnosis.Direction || d.Margin != tr.Diagnosis.Margin {
		t.Errorf("diagnosed again: %s (margin %v), in process %s (%v)", d.Direction, d.Margin, tr.Diagnosis.Direction, tr.Diagnosis.Margin)
	}
}

// A look that counted the flows it did not see at its TTL round-trips,
// and takes them to cross its place, by state, in the share of the flows
// seen there that were seen at the place: healthy, 3 left untraced at pA
// and 3 others elsewhere, and the traced ones, 1 at pA and 2 at pB, so 4
// of 9; failing, the one traced, at pA. Of the 6 unseen (4 healthy, 2
// failing), 16/9 healthy and both failing go with pA.
func TestDecodeTraceLookedUnseen(t *testing.T) {
	const r1, pA, pB = "198.19.0.1", "198.19.1.2", "198.19.2.2"
	tr := Trace{Target: netip.MustParseAddrPort("198.18.2.2:3306"), Source: netip.MustParseAddr("198.18.1.1"), Mode: "raw",
		MaxTTL: 4, ProbesPerHop: 2, Count: 3, Untraced: Untraced{OK: 10, Fail: 2},
		Looked: &Looked{Look: Look{TTL: 2, Addrs: []netip.Addr{netip.MustParseAddr(pA)}}, Untraced: Untraced{OK: 3},
			Picked: 1, Unseen: &Untraced{OK: 4, Fail: 2}, Ports: []uint16{2}},
		Flows: []FlowTrace{flowOf(1, hash.StateFail, r1, pA, "*"), flowOf(2, hash.StateOK, r1, pA, "="),
			flowOf(3, hash.StateOK, r1, pB, "="), flowOf(4, hash.StateOK, r1, pB, "=")}}
	tr.Diagnosis = DiagnoseSample(tr.Flows, tr.Sample())
	got, _ := roundTrip(t, tr)
	if l := got.Looked; l == nil || l.Picked != 1 || l.Unseen == nil || *l.Unseen != *tr.Looked.Unseen || !slices.Equal(l.Ports, tr.Looked.Ports) {
		t.Fatalf("looked read back as %+v, want %+v", l, tr.Looked)
	}
	// pA's healthy flow: itself, the 3 left and 16/9 unseen; the two
	// elsewhere: themselves, the 3 seen elsewhere and 20/9 unseen; pA's
	// failing flow: itself and both failing ones untraced.
	s := got.Sample()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if want := (2 + 3 + 20.0/9) / 2; !near(s.OK, want) || len(s.Weight) != 2 || !near(s.Weight[1], 3) || !near(s.Weight[2], 4+16.0/9) {
		t.Errorf("sample %+v, want healthy flows elsewhere for %.3f and weights 3 and %.3f", s, want, 4+16.0/9)
	}
}

// A look at a place every flow it saw crosses (r1, or every member that
// answers) is a wider sample, not a stratum: the flows it did not see
// cross there too, so the traced flows weigh back as without a look. One
// whose picks answered elsewhere is a stratum again.
func TestWeighBackLookEverywhere(t *testing.T) {
	const r1, pA = "198.19.0.1", "198.19.1.2"
	flows := []FlowTrace{flowOf(1, hash.StateFail, r1, "*", "*"), flowOf(2, hash.StateOK, r1, pA, "="),
		flowOf(3, hash.StateOK, "*", pA, "="), flowOf(4, hash.StateFail, r1, "*", "*")}
	u := Untraced{OK: 90, Fail: 30}
	want := WeighBack(flows, u, nil)
	at := Look{TTL: 1, Addrs: []netip.Addr{netip.MustParseAddr(r1)}}
	for name, l := range map[string]*Looked{
		"recorded before it counted the unseen": {Look: at, Untraced: Untraced{OK: 4}},
		"every flow of the rest unseen":         {Look: at, Untraced: Untraced{OK: 4}, Picked: 2, Unseen: &Untraced{OK: 86, Fail: 30}},
	} {
		if got := WeighBack(flows, u, l); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %+v, want %+v as without a look", name, got, want)
		}
	}
	some := &Looked{Look: at, Untraced: Untraced{OK: 4}, Picked: 2, Unseen: &Untraced{OK: 80, Fail: 30}}
	if got := WeighBack(flows, u, some); reflect.DeepEqual(got, want) || got.Weight == nil {
		t.Errorf("6 healthy flows seen elsewhere: %+v, want a stratum of r1's", got)
	}
}

func TestDecodeTraceRefuses(t *testing.T) {
	head := `{"schema_version": 1, "type": "trace", "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1", `
	for name, in := range map[string]string{
		"not json":            `{"schema`,
		"a sweep":             `{"schema_version": 1, "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1"}`,
		"future schema":       `{"schema_version": 99, "type": "trace", "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1"}`,
		"mixed families":      `{"schema_version": 1, "type": "trace", "target": {"addr": "2001:db8::2", "port": 80}, "source": "198.18.1.1"}`,
		"unknown state":       head + `"flows": [{"sport": 1, "state": "dead"}]}`,
		"more received":       head + `"flows": [{"sport": 1, "state": "ok", "sent": 1, "received": 2}]}`,
		"a port twice":        head + `"flows": [{"sport": 1, "state": "ok"}, {"sport": 1, "state": "fail"}]}`,
		"ttl out of order":    head + `"flows": [{"sport": 1, "state": "ok", "hops": [{"ttl": 2, "addr": null}]}]}`,
		"v6 hop":              head + `"flows": [{"sport": 1, "state": "ok", "hops": [{"ttl": 1, "addr": "2001:db8::1"}]}]}`,
		"reached, no address": head + `"flows": [{"sport": 1, "state": "ok", "hops": [{"ttl": 1, "addr": null, "reached": true}]}]}`,
		"untraced < 0":        head + `"untraced": {"ok": -1, "fail": 0, "flaky": 0}, "flows": []}`,
		"untraced too many":   head + `"untraced": {"ok": 0, "fail": 70000, "flaky": 0}, "flows": []}`,
		"looked ttl 0":        head + untracedAndLooked(`"ttl": 0, "addrs": ["198.19.1.2"]`, 1),
		"looked, no address":  head + untracedAndLooked(`"ttl": 2, "addrs": []`, 1),
		"looked v6 address":   head + untracedAndLooked(`"ttl": 2, "addrs": ["2001:db8::1"]`, 1),
		"looked beyond":       head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"]`, 20),
		"picked alone":        head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 2`, 1),
		"unseen alone":        head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "unseen": {"ok": 1, "fail": 0, "flaky": 0}`, 1),
		"unseen beyond":       head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 2, "unseen": {"ok": 10, "fail": 0, "flaky": 0}`, 1),
		"picked < 0":          head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": -1, "unseen": {"ok": 1, "fail": 0, "flaky": 0}`, 1),
		"sports alone":        head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "sports": [7]`, 1),
		"sports not picked":   head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 2, "unseen": {"ok": 1, "fail": 0, "flaky": 0}, "sports": [7]`, 1),
		"sports out of order": head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 2, "unseen": {"ok": 1, "fail": 0, "flaky": 0}, "sports": [8, 7]`, 1),
		"sports twice":        head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 2, "unseen": {"ok": 1, "fail": 0, "flaky": 0}, "sports": [7, 7]`, 1),
		"sports no flow":      head + untracedAndLooked(`"ttl": 2, "addrs": ["198.19.1.2"], "picked": 1, "unseen": {"ok": 1, "fail": 0, "flaky": 0}, "sports": [7]`, 1),
		"zoned address":       `{"schema_version": 1, "type": "trace", "target": {"addr": "2001:db8::2", "port": 80}, "source": "2001:db8::1", "flows": [{"sport": 1, "state": "ok", "hops": [{"ttl": 1, "addr": "fe80::1%eth0"}]}]}`,
	} {
		if _, err := DecodeTrace([]byte(in)); !errors.Is(err, ErrNotTrace) {
			t.Errorf("%s: err = %v, want ErrNotTrace", name, err)
		}
	}
}

// untracedAndLooked is a document's tail: 10 healthy flows untraced, ok of
// which the look saw crossing.
func untracedAndLooked(look string, ok int) string {
	return fmt.Sprintf(`"untraced": {"ok": 10, "fail": 0, "flaky": 0}, "looked": {%s, "untraced": {"ok": %d, "fail": 0, "flaky": 0}}, "flows": []}`, look, ok)
}

// FuzzDecodeTrace: no input panics the reader or the diagnosis of what it
// accepts, and what it accepts is well-formed.
func FuzzDecodeTrace(f *testing.F) {
	for _, name := range []string{"valid-trace-return.json", "valid-trace-small.json", "valid-trace-two-ended.json", "valid-trace-ipid.json", "valid-trace-alias-test.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1",` +
		`"gateway":"fe80::1%eth0","responder":{"addr":"198.18.2.2:7000","gateway":"198.19.9.1"},"flows":[]}`))
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1",` +
		`"untraced":{"ok":200,"fail":3,"flaky":1},"flows":[{"sport":7,"state":"fail","sent":3}]}`))
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1",` +
		`"untraced":{"ok":200,"fail":3,"flaky":1},"looked":{"ttl":2,"addrs":["198.19.1.2"],"untraced":{"ok":12,"fail":0,"flaky":0}},` +
		`"flows":[{"sport":7,"state":"fail","sent":3,"hops":[{"ttl":1,"addr":"198.19.0.1"},{"ttl":2,"addr":"198.19.1.2"}]},{"sport":8,"state":"ok","sent":3,"received":3}]}`))
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1",` +
		`"untraced":{"ok":200,"fail":3,"flaky":1},"looked":{"ttl":1,"addrs":["198.19.0.1"],"untraced":{"ok":12,"fail":0,"flaky":0},"picked":4,"unseen":{"ok":150,"fail":2,"flaky":1}},` +
		`"flows":[{"sport":7,"state":"fail","sent":3,"hops":[{"ttl":1,"addr":null}]},{"sport":8,"state":"ok","sent":3,"received":3}]}`))
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"198.18.2.2","port":3306},"source":"198.18.1.1",` +
		`"untraced":{"ok":200,"fail":3,"flaky":1},"looked":{"ttl":1,"addrs":["198.19.0.1"],"untraced":{"ok":12,"fail":0,"flaky":0},"picked":1,"unseen":{"ok":150,"fail":2,"flaky":1},"sports":[8]},` +
		`"flows":[{"sport":7,"state":"fail","sent":3,"hops":[{"ttl":1,"addr":null}]},{"sport":8,"state":"ok","sent":3,"received":3,"hops":[{"ttl":1,"addr":"198.19.0.1"}]}]}`))
	f.Add([]byte(`{"schema_version":1,"type":"trace","target":{"addr":"2001:db8:2::2","port":3306},"source":"2001:db8:1::1",` +
		`"rate_limit_test":{"rounds":3,"drained":2,"silenced":2,"groups":[["2001:db8:ff00:201::2","2001:db8:ff00:203::2"]]},"flows":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tr, err := DecodeTrace(data)
		if err != nil {
			if !errors.Is(err, ErrNotTrace) {
				t.Fatalf("error %v does not wrap ErrNotTrace", err)
			}
			return
		}
		if !tr.Target.IsValid() || !tr.Source.IsValid() {
			t.Fatalf("accepted a document without a target or source: %+v", tr)
		}
		for _, fl := range tr.Flows {
			if fl.Sport == 0 || fl.Received > fl.Sent || len(fl.Hops) > maxDecodedHops {
				t.Fatalf("accepted a bad flow: %+v", fl)
			}
		}
		if u := tr.Untraced; u.OK < 0 || u.Fail < 0 || u.Flaky < 0 {
			t.Fatalf("accepted negative untraced counts: %+v", u)
		}
		if s := tr.Sample(); s.Fail < 1 || s.OK < 1 {
			t.Fatalf("weighs a traced flow for less than itself: %+v", s)
		} else {
			for sp, w := range s.Weight {
				if w < 1 {
					t.Fatalf("weighs traced flow %d for %v, less than itself", sp, w)
				}
			}
		}
		if l := tr.Looked; l != nil && (l.TTL < 1 || len(l.Addrs) == 0 || l.Untraced.OK > tr.Untraced.OK || len(l.Ports) > l.Picked) {
			t.Fatalf("accepted a bad look: %+v", *l)
		}
		if l := tr.RateLimits; l != nil && (l.Silenced > l.Drained || l.Drained > l.Rounds || slices.ContainsFunc(l.Groups, func(g []netip.Addr) bool { return len(g) < 2 })) {
			t.Fatalf("accepted a bad rate-limit test: %+v", *l)
		}
		if gw := tr.Gateway; gw.IsValid() && netip.MustParseAddr(gw.String()) != gw {
			t.Fatalf("gateway read as %v", gw)
		}
		if len(tr.Flows) <= 256 {
			_ = Diagnose(tr.Flows)
		}
	})
}
