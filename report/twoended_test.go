package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// twoEnded re-sums a sweep with what its responder saw.
func twoEnded(s Sweep, t *TwoEnded) Sweep {
	s.TwoEnded = t
	ports := make([]hash.FlowStats, len(s.Ports))
	for i, p := range s.Ports {
		ports[i] = p.FlowStats
	}
	return summed(s, ports)
}

func TestTwoEndedDirection(t *testing.T) {
	failing := map[uint16]bool{30002: true, 30006: true, 30007: true}
	base := sweepOf(10, failing, nil, echoIDs(2, ok, ok))
	arrivedAll := map[uint16]int{}
	for i := range 10 {
		arrivedAll[uint16(30000+i)] = 3
	}
	healthyOnly := map[uint16]int{}
	for sp, n := range arrivedAll {
		if !failing[sp] {
			healthyOnly[sp] = n
		}
	}
	some := map[uint16]int{30002: 3}
	for sp, n := range healthyOnly {
		some[sp] = n
	}
	cases := []struct {
		name     string
		t        *TwoEnded
		kind     string
		fwd, ret int
		text     string
	}{
		{"return", &TwoEnded{Responder: "198.18.2.2:7000", Arrived: arrivedAll}, TwoEndedReturn, 0, 3, "their answers are lost on the way back"},
		{"forward", &TwoEnded{Responder: "198.18.2.2:7000", Arrived: healthyOnly}, TwoEndedForward, 3, 0, "lost on the way there"},
		{"both", &TwoEnded{Responder: "198.18.2.2:7000", Arrived: some}, TwoEndedBoth, 2, 1, "1 of the 3 failing ports reach"},
		{"forward but drops", &TwoEnded{Responder: "198.18.2.2:7000", Arrived: healthyOnly, Dropped: 5}, TwoEndedUnknown, 3, 0, "dropped 5 packets"},
		{"unreachable responder", &TwoEnded{Responder: "198.18.2.2:7000", Err: "6 attempts failed"}, TwoEndedUnknown, 0, 0, "could not be asked"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := twoEnded(base, c.t)
			d := s.Summary.Direction
			if d == nil || d.Kind != c.kind || d.Forward != c.fwd || d.Return != c.ret {
				t.Fatalf("direction %+v", d)
			}
			if !strings.Contains(s.Summary.Verdict, c.text) {
				t.Errorf("verdict %q lacks %q", s.Summary.Verdict, c.text)
			}
			var buf bytes.Buffer
			if err := Render(&buf, FormatJSON, s, Options{}); err != nil {
				t.Fatal(err)
			}
			if err := schematest.Validate(schematest.Sweep, buf.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
			var doc struct {
				Ports []struct {
					Sport   uint16 `json:"sport"`
					Arrived *int   `json:"arrived"`
				} `json:"ports"`
				Summary struct {
					Direction struct{ Kind string } `json:"direction"`
				} `json:"summary"`
			}
			if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			for _, p := range doc.Ports {
				if (p.Arrived == nil) != (c.t.Err != "") || (p.Arrived != nil && *p.Arrived != c.t.Arrived[p.Sport]) {
					t.Errorf("port %d arrived %v", p.Sport, p.Arrived)
				}
			}
			if doc.Summary.Direction.Kind != c.kind {
				t.Errorf("JSON direction %q", doc.Summary.Direction.Kind)
			}
		})
	}
	// The table says it per failing port.
	var table bytes.Buffer
	if err := Render(&table, FormatTable, twoEnded(base, &TwoEnded{Responder: "r", Arrived: some}), Options{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"30002  fail", "3 SYNs arrived: lost on the way back", "no SYN arrived: lost on the way there"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	// Without a responder nothing of it shows.
	var buf bytes.Buffer
	if err := Render(&buf, FormatJSON, base, Options{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `"arrived"`) || strings.Contains(buf.String(), `"direction"`) {
		t.Error("a one-ended sweep carries two-ended keys")
	}
}

func TestReturnPathsSayWhatWasProbedAgain(t *testing.T) {
	rp := &ReturnPaths{Flows: 48, Direction: DirectionNone, Retried: &Retried{TTLs: []int{1, 2}, Holes: 30, Rounds: 3, Probes: 9, Answers: 4}}
	if got := returnPathsText(rp); !strings.Contains(got, "the routers at TTL 1 and 2 from the responder rate-limit their errors: 30 silent hops probed again in 3 rounds, 4 answered") {
		t.Errorf("text: %s", got)
	}
	if j := returnPathsDoc(rp); j.Retried == nil || j.Retried.Answers != 4 || j.Retried.Rounds != 3 {
		t.Errorf("JSON: %+v", j.Retried)
	}
}
