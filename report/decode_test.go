package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
	"os"
	"path/filepath"
	"testing"
)

func TestDecodeSweepReadsWhatRenderWrites(t *testing.T) {
	s := withErrors(sweepOf(8, map[uint16]bool{30002: true}, map[uint16]bool{30005: true}, echoIDs(2, ok)), 1)
	var buf bytes.Buffer
	if err := Render(&buf, FormatJSON, s, Options{}); err != nil {
		t.Fatal(err)
	}
	doc, err := DecodeSweep(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if doc.Target != s.Target || doc.Source != s.Source || doc.Kind != s.Summary.Kind || len(doc.Ports) != len(s.Ports) {
		t.Fatalf("decoded %+v; want the sweep's target, source, kind and %d ports", doc, len(s.Ports))
	}
	for i, p := range doc.Ports {
		want := s.Ports[i]
		if p.Sport != want.Tuple.SrcPort || p.State != want.State || p.Sent != want.Sent || p.Received != want.Received {
			t.Errorf("port %d: %+v, want %d %s %d/%d", i, p, want.Tuple.SrcPort, want.State, want.Received, want.Sent)
		}
	}
}

func TestDecodeSweepRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"not json":        `{"schema`,
		"future schema":   `{"schema_version": 99, "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1"}`,
		"jsonl record":    `{"schema_version": 1, "type": "summary", "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1"}`,
		"bad address":     `{"schema_version": 1, "target": {"addr": "db", "port": 80}, "source": "198.18.1.1"}`,
		"mixed families":  `{"schema_version": 1, "target": {"addr": "2001:db8::2", "port": 80}, "source": "198.18.1.1"}`,
		"unknown state":   `{"schema_version": 1, "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1", "ports": [{"sport": 1, "state": "dead"}]}`,
		"a trace instead": `{"schema_version": 1, "type": "trace", "target": {"addr": "198.18.2.2", "port": 80}, "source": "198.18.1.1"}`,
	} {
		if _, err := DecodeSweep([]byte(in)); !errors.Is(err, ErrNotSweep) {
			t.Errorf("%s: err = %v, want ErrNotSweep", name, err)
		}
	}
}

// FuzzDecodeSweep: no input panics the reader, and what it accepts is
// well-formed.
func FuzzDecodeSweep(f *testing.F) {
	for _, name := range []string{"valid-fault.json", "valid-down.json", "valid-cannot-probe.json"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"schema_version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := DecodeSweep(data)
		if err != nil {
			if !errors.Is(err, ErrNotSweep) {
				t.Fatalf("error %v does not wrap ErrNotSweep", err)
			}
			return
		}
		if !doc.Target.IsValid() || doc.Target.Port() == 0 || !doc.Source.IsValid() {
			t.Fatalf("accepted a document without a target or source: %+v", doc)
		}
		for _, p := range doc.Ports {
			if p.Sport == 0 || p.Sent < 0 || p.Received < 0 {
				t.Fatalf("accepted a bad port: %+v", p)
			}
		}
	})
}

// Every JSON golden file is a valid document of its schema (top-level
// testdata/), and a document that breaks the contract is not.
func TestGoldenDocumentsMatchTheSchema(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("testdata", "valid-*.json"))
	if len(files) < 3 {
		t.Fatalf("only %d golden JSON files", len(files))
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var head struct{ Type string }
		if err := json.Unmarshal(data, &head); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		kind := schematest.Sweep
		if head.Type == "trace" {
			kind = schematest.Trace
		}
		if err := schematest.Validate(kind, data); err != nil {
			t.Errorf("%s: %v", file, err)
		}
	}
	bad := []byte(`{"schema_version": 1, "target": {"host": "", "addr": "198.18.2.2", "port": 3306}, "ports": []}`)
	if schematest.Validate(schematest.Sweep, bad) == nil {
		t.Error("a document without a summary passed the schema")
	}
}
