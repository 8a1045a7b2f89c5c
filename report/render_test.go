package report

import (
	"bytes"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var (
	src    = netip.MustParseAddr("198.18.1.1")
	target = netip.MustParseAddrPort("198.18.2.2:3306")
)

// flow makes the aggregate of one source port from its per-probe results.
func flow(sport uint16, results ...hash.Result) hash.FlowStats {
	b := hash.BySourcePort()
	tuple := hash.FiveTuple{Src: src, Dst: target.Addr(), Proto: hash.ProtoTCP, SrcPort: sport, DstPort: target.Port()}
	for i, r := range results {
		b.Add(hash.Observation{Tuple: tuple, Result: r, RTT: time.Duration(100+10*i) * time.Microsecond})
	}
	return b.Buckets()[0]
}

func echoIDs(n int, results ...hash.Result) []hash.Judged {
	b := hash.BySourcePort()
	for id := range n {
		tuple := hash.FiveTuple{Src: src, Dst: target.Addr(), Proto: hash.ProtoICMP, SrcPort: uint16(500 + id)}
		for _, r := range results {
			b.Add(hash.Observation{Tuple: tuple, Result: r, RTT: 80 * time.Microsecond})
		}
	}
	j, _ := hash.Judge(b.Buckets(), hash.DefaultAlpha)
	return j
}

const (
	ok      = hash.Received
	lost    = hash.Lost
	notSent = hash.NotSent
)

// summed judges the ports as the core does and sums the sweep up.
func summed(s Sweep, ports []hash.FlowStats) Sweep {
	var loss float64
	s.Ports, loss = hash.Judge(ports, hash.DefaultAlpha)
	s.Summary = Summarize(s, loss, hash.WidthEstimate{})
	return s
}

// sweepOf builds a sweep of n ports where the listed ports fail and the
// flaky ones lose their first probe.
func sweepOf(n int, failing, flaky map[uint16]bool, icmp []hash.Judged) Sweep {
	var ports []hash.FlowStats
	for i := range n {
		sp := uint16(30000 + i)
		switch {
		case failing[sp]:
			ports = append(ports, flow(sp, lost, lost, lost))
		case flaky[sp]:
			ports = append(ports, flow(sp, lost, ok, ok))
		default:
			ports = append(ports, flow(sp, ok, ok, ok))
		}
	}
	s := Sweep{
		Host: "db-vip", Target: target, Source: src, Mode: "raw", Count: 3, Rate: 500, Timeout: time.Second,
		Started: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Duration: 1500 * time.Millisecond,
		ICMP: ICMP{IDs: icmp},
	}
	return summed(s, ports)
}

// withErrors makes the first n ports of a sweep unsendable, as a local
// firewall would.
func withErrors(s Sweep, n int) Sweep {
	var ports []hash.FlowStats
	for i, p := range s.Ports {
		if i < n {
			ports = append(ports, flow(p.Tuple.SrcPort, notSent, notSent, notSent))
			continue
		}
		ports = append(ports, p.FlowStats)
	}
	s.SendFailures = []SendFailure{{Cause: "firewall", Count: 3 * n, Example: "sendto: operation not permitted"}}
	return summed(s, ports)
}

func TestRenderGolden(t *testing.T) {
	fault := sweepOf(8, map[uint16]bool{30002: true, 30006: true}, map[uint16]bool{30005: true}, echoIDs(4, ok, ok, ok))
	healthy := sweepOf(4, nil, nil, echoIDs(2, ok))
	big := sweepOf(150, map[uint16]bool{30003: true, 30007: true, 30011: true, 30100: true}, nil, nil)
	big.ICMP.Skipped = "disabled with --icmp 0"
	down := sweepOf(3, map[uint16]bool{30000: true, 30001: true, 30002: true}, nil, echoIDs(2, lost))
	cases := []struct {
		name   string
		sweep  Sweep
		format Format
		opt    Options
	}{
		{"valid-fault-table.txt", fault, FormatTable, Options{}},
		{"valid-fault-table-color.txt", fault, FormatTable, Options{Color: true}},
		{"valid-fault-quiet.txt", fault, FormatTable, Options{Quiet: true}},
		{"valid-fault.json", fault, FormatJSON, Options{}},
		{"valid-fault.jsonl", fault, FormatJSONL, Options{}},
		{"valid-fault.csv", fault, FormatCSV, Options{}},
		{"valid-healthy-table.txt", healthy, FormatTable, Options{}},
		{"valid-grid-table.txt", big, FormatTable, Options{}},
		{"valid-down.json", down, FormatJSON, Options{}},
		{"valid-cannot-probe.json", withErrors(sweepOf(4, nil, nil, nil), 4), FormatJSON, Options{}},
		{"valid-partial-errors-table.txt", withErrors(fault, 2), FormatTable, Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Render(&buf, c.format, c.sweep, c.opt); err != nil {
				t.Fatal(err)
			}
			golden(t, c.name, buf.String())
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\n%s", name, lineDiff(string(want), got))
	}
}

// lineDiff shows the first lines that differ, readable in a terminal.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  - " + wl + "\n  + " + gl + "\n")
			shown++
		}
	}
	return b.String()
}

func TestSummaryVerdicts(t *testing.T) {
	cases := []struct {
		name      string
		sweep     Sweep
		kind      Kind
		exit      int
		fail      int
		nearest   int
		icmpState string
	}{
		{"one in four fails", sweepOf(16, map[uint16]bool{30001: true, 30005: true, 30009: true, 30013: true}, nil, echoIDs(2, ok)), KindECMPFault, 1, 4, 4, "ok"},
		{"healthy", sweepOf(16, nil, nil, echoIDs(2, ok)), KindHealthy, 0, 0, 0, "ok"},
		{"only flaky", sweepOf(16, nil, map[uint16]bool{30003: true}, nil), KindLoss, 0, 0, 0, "skipped"},
		{"everything fails", sweepOf(4, map[uint16]bool{30000: true, 30001: true, 30002: true, 30003: true}, nil, echoIDs(1, lost)), KindTargetDown, 4, 4, 1, "fail"},
		{"nothing sent", summed(Sweep{Target: target}, nil), KindNoData, 0, 0, 0, "skipped"},
		{"firewall drops every probe", withErrors(sweepOf(16, nil, nil, nil), 16), KindCannotProbe, 3, 0, 0, "skipped"},
		{"firewall drops most probes", withErrors(sweepOf(16, nil, nil, nil), 9), KindCannotProbe, 3, 0, 0, "skipped"},
		{"a few ports not sent", withErrors(sweepOf(16, map[uint16]bool{30010: true}, nil, nil), 2), KindECMPFault, 1, 1, 14, "skipped"},
		{"host drops replies", withDrops(sweepOf(16, map[uint16]bool{30010: true}, nil, nil)), KindCannotProbe, 3, 1, 16, "skipped"},
		{"drops without loss", withDrops(sweepOf(16, nil, nil, nil)), KindHealthy, 0, 0, 0, "skipped"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := c.sweep.Summary
			if s.Kind != c.kind || s.ExitCode() != c.exit || s.Fail != c.fail || s.NearestN != c.nearest || s.ICMPState != c.icmpState {
				t.Errorf("got kind %s exit %d fail %d nearest 1/%d icmp %s; want %s %d %d 1/%d %s",
					s.Kind, s.ExitCode(), s.Fail, s.NearestN, s.ICMPState, c.kind, c.exit, c.fail, c.nearest, c.icmpState)
			}
		})
	}
}

func withDrops(s Sweep) Sweep {
	s.LocalDrops = 7
	s.Summary = Summarize(s, s.Summary.BackgroundLoss, hash.WidthEstimate{})
	return s
}

// Honest verdicts name the cause of what could not be measured.
func TestCannotProbeNamesTheCause(t *testing.T) {
	s := withErrors(sweepOf(8, nil, nil, nil), 8).Summary
	if !strings.Contains(s.Verdict, "firewall OUTPUT rule") || s.Error != 8 || s.FailFraction != 0 {
		t.Errorf("verdict %q, error %d, fail fraction %g; want the firewall named, 8 error ports", s.Verdict, s.Error, s.FailFraction)
	}
	partial := withErrors(sweepOf(16, map[uint16]bool{30010: true}, nil, nil), 2).Summary
	if !strings.Contains(partial.Verdict, "2 of 16 source ports could not be probed") || partial.FailFraction != 1.0/14 {
		t.Errorf("verdict %q, fail fraction %g; want the 2 error ports named and left out of 1/14", partial.Verdict, partial.FailFraction)
	}
	drops := withDrops(sweepOf(16, map[uint16]bool{30010: true}, nil, nil)).Summary
	if !strings.Contains(drops.Verdict, "dropped 7 packets") || strings.Contains(drops.Verdict, "ECMP member") {
		t.Errorf("verdict %q; want the local drops named and no ECMP claim", drops.Verdict)
	}
}

func TestPortRanges(t *testing.T) {
	got := PortRanges([]uint16{1, 2, 3, 5, 7, 8, 65535})
	if want := "1-3,5,7-8,65535"; got != want {
		t.Errorf("PortRanges = %q, want %q", got, want)
	}
}

func TestParseFormat(t *testing.T) {
	for _, ok := range []string{"table", "json", "jsonl", "csv"} {
		if _, err := ParseFormat(ok); err != nil {
			t.Errorf("ParseFormat(%q): %v", ok, err)
		}
	}
	if _, err := ParseFormat("xml"); err == nil {
		t.Error("ParseFormat(xml) succeeded")
	}
}
