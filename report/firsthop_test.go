package report

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// silentGatewayFlows: a first hop that answers no probe, then two members;
// the second forwards nothing (a blackhole no probe sees).
func silentGatewayFlows() []FlowTrace {
	p1 := netip.MustParseAddr("198.19.1.2")
	var fs []FlowTrace
	for i := range 24 {
		f := FlowTrace{Sport: uint16(30000 + i), State: hash.StateOK, Sent: 2, Received: 2, ReachedTTL: 3}
		silent := TraceHop{TTL: 1, Probes: 2}
		f.Hops = []TraceHop{silent, {TTL: 2, Addr: p1, Probes: 2, Answers: 2, ICMPType: 11},
			{TTL: 3, Addr: server, Probes: 2, Answers: 2, Reached: true}}
		if i%3 == 0 {
			f.State, f.Received, f.ReachedTTL = hash.StateFail, 0, 0
			f.Hops = []TraceHop{silent, {TTL: 2, Probes: 2}, {TTL: 3, Probes: 2}, {TTL: 4, Probes: 2}}
		}
		fs = append(fs, f)
	}
	return fs
}

func TestWithFirstHop(t *testing.T) {
	gw := netip.MustParseAddr("198.19.0.1")
	fs := silentGatewayFlows()
	d := Diagnose(fs)
	if d.Direction != DirectionForward || len(d.Suspects) == 0 || d.Suspects[0].Addr.IsValid() {
		t.Fatalf("without the gateway: %s, %+v", d.Direction, d.Suspects)
	}
	got := WithFirstHop(d, fs, gw)
	if s := got.Suspects[0]; s.FirstHop != gw || !bytes.Contains([]byte(s.Evidence), []byte(gw.String())) {
		t.Errorf("suspects[0] %+v does not name the gateway", s)
	}
	if d.Suspects[0].FirstHop.IsValid() {
		t.Error("WithFirstHop changed the diagnosis it was given")
	}
	if !bytes.Contains([]byte(got.Text), []byte("gateway "+gw.String())) {
		t.Errorf("text does not name the gateway: %s", got.Text)
	}
	// A first hop that answers names itself; no gateway, nothing named.
	answered := silentGatewayFlows()
	answered[1].Hops[0].Addr, answered[1].Hops[0].Answers, answered[1].Hops[0].ICMPType = gw, 2, 11
	for name, c := range map[string]struct {
		fs []FlowTrace
		gw netip.Addr
	}{"answering first hop": {answered, gw}, "no gateway": {fs, netip.Addr{}}} {
		if s := WithFirstHop(Diagnose(c.fs), c.fs, c.gw).Suspects; len(s) > 0 && s[0].FirstHop.IsValid() {
			t.Errorf("%s: named %v", name, s[0].FirstHop)
		}
	}
}

// The gateway and first_hop keys keep the schema and read back.
func TestFirstHopDocument(t *testing.T) {
	gw := netip.MustParseAddr("198.19.0.1")
	fs := silentGatewayFlows()
	tr := traceOf(fs, 8)
	tr.Gateway = gw
	tr.Diagnosis = WithFirstHop(Diagnose(fs), fs, gw)
	var buf bytes.Buffer
	if err := RenderTrace(&buf, FormatJSON, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(schematest.Trace, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Gateway   string `json:"gateway"`
		Diagnosis struct {
			Suspects []struct {
				FirstHop string `json:"first_hop"`
			} `json:"suspects"`
		} `json:"diagnosis"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Gateway != gw.String() || len(doc.Diagnosis.Suspects) == 0 || doc.Diagnosis.Suspects[0].FirstHop != gw.String() {
		t.Errorf("document gateway %q, suspects %+v", doc.Gateway, doc.Diagnosis.Suspects)
	}
	back, err := DecodeTrace(buf.Bytes())
	if err != nil || back.Gateway != gw {
		t.Errorf("read back: gateway %v, %v", back.Gateway, err)
	}
	buf.Reset()
	if err := RenderTrace(&buf, FormatTable, tr, Options{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(buf.Bytes(), []byte("first hop "+gw.String())) {
		t.Errorf("text output does not name the gateway:\n%s", buf.String())
	}
}
