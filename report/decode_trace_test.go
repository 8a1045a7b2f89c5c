package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

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
	for _, name := range []string{"valid-trace-return.json", "valid-trace-small.json", "valid-trace-two-ended.json", "valid-trace-ipid.json"} {
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

// The flows classified but not traced survive the document, and weigh
// the traced ones back.
func TestDecodeTraceUntraced(t *testing.T) {
	tr := Trace{Target: netip.MustParseAddrPort("198.18.2.2:3306"), Source: netip.MustParseAddr("198.18.1.1"), Mode: "raw",
		MaxTTL: 4, ProbesPerHop: 2, Count: 3, Untraced: Untraced{OK: 90, Fail: 4, Flaky: 2},
		Flows: []FlowTrace{{Sport: 1, State: "fail", Sent: 3}, {Sport: 2, State: "fail", Sent: 3}, {Sport: 3, State: "ok", Sent: 3, Received: 3}}}
	tr.Diagnosis = DiagnoseSample(tr.Flows, tr.Sample())
	var buf bytes.Buffer
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
	var text bytes.Buffer
	if err := RenderTrace(&text, FormatTable, tr, Options{}); err != nil {
		t.Fatal(err)
	}
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
	if s := WeighBack(tr.Flows, Untraced{}); s.Fail != 1 || s.OK != 1 {
		t.Errorf("every flow traced: sample %+v, want 1 and 1", s)
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
		"zoned address":       `{"schema_version": 1, "type": "trace", "target": {"addr": "2001:db8::2", "port": 80}, "source": "2001:db8::1", "flows": [{"sport": 1, "state": "ok", "hops": [{"ttl": 1, "addr": "fe80::1%eth0"}]}]}`,
	} {
		if _, err := DecodeTrace([]byte(in)); !errors.Is(err, ErrNotTrace) {
			t.Errorf("%s: err = %v, want ErrNotTrace", name, err)
		}
	}
}

// FuzzDecodeTrace: no input panics the reader or the diagnosis of what it
// accepts, and what it accepts is well-formed.
func FuzzDecodeTrace(f *testing.F) {
	for _, name := range []string{"valid-trace-return.json", "valid-trace-small.json", "valid-trace-two-ended.json", "valid-trace-ipid.json"} {
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
		}
		if gw := tr.Gateway; gw.IsValid() && netip.MustParseAddr(gw.String()) != gw {
			t.Fatalf("gateway read as %v", gw)
		}
		if len(tr.Flows) <= 256 {
			_ = Diagnose(tr.Flows)
		}
	})
}
