package report

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// flowsFromBytes reads fuzz input as traced flows: per flow a state byte,
// a hop count, then per hop an address from a small pool (0: silent; the
// top bit: the destination answered; 0x40: an unreachable).
func flowsFromBytes(data []byte) []FlowTrace {
	pool := []netip.Addr{{},
		netip.MustParseAddr("198.18.255.1"), netip.MustParseAddr("198.18.255.11"), netip.MustParseAddr("198.18.255.12"),
		netip.MustParseAddr("198.18.255.41"), netip.MustParseAddr("198.18.255.42"), netip.MustParseAddr("198.18.255.99"),
		netip.MustParseAddr("198.19.101.2"), netip.MustParseAddr("2001:db8:ffff::1")}
	states := []hash.State{hash.StateOK, hash.StateFail, hash.StateFlaky}
	var fs []FlowTrace
	for len(data) >= 2 && len(fs) < 64 {
		f := FlowTrace{Sport: uint16(30000 + len(fs)), State: states[int(data[0])%len(states)], Sent: 3}
		if f.State == hash.StateOK {
			f.Received = 3
		}
		n := min(int(data[1])%10, len(data)-2)
		for i, b := range data[2 : 2+n] {
			h := TraceHop{TTL: i + 1, Probes: 2, Addr: pool[int(b&0x3f)%len(pool)]}
			if h.Addr.IsValid() {
				h.Answers, h.ICMPType = 2, 11
				if b&0x40 != 0 {
					h.ICMPType = 3
				}
			}
			if b&0x80 != 0 {
				h.Addr, h.Reached, h.Answers = server, true, 2
				f.Hops = append(f.Hops, h)
				f.ReachedTTL = h.TTL
				break
			}
			f.Hops = append(f.Hops, h)
		}
		fs = append(fs, f)
		data = data[2+n:]
	}
	return fs
}

// FuzzDiagnose: any set of traced flows gets a diagnosis whose first
// suspect agrees with its direction, with finite scores, in a document
// that keeps its schema.
func FuzzDiagnose(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2, 0x86, 1, 5, 1, 2, 0, 0, 0})
	f.Add([]byte{0, 4, 1, 2, 4, 0x86, 1, 5, 1, 3, 0, 0, 0, 0, 3, 1, 3, 5, 0x86, 1, 4, 1, 3, 5, 6})
	f.Add([]byte{1, 2, 1, 0x42, 0, 3, 1, 2, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs := flowsFromBytes(data)
		d := DiagnoseSample(fs, Sample{Fail: float64(len(data) % 3), OK: float64(len(data) % 5)})
		if len(d.Suspects) > 0 && (d.Direction == DirectionForward || d.Direction == DirectionReturn) && d.Suspects[0].Direction != d.Direction {
			t.Fatalf("direction %s, suspects[0] %s", d.Direction, d.Suspects[0].Direction)
		}
		if d.Text == "" {
			t.Fatal("no text")
		}
		var buf bytes.Buffer
		if err := RenderTrace(&buf, FormatJSON, traceOf(fs, 8), Options{}); err != nil {
			t.Fatal(err)
		}
		// The schema check is slow next to the rest: a fixed sixteenth of
		// the inputs take it.
		if len(data)%16 == 0 {
			if err := schematest.Validate(schematest.Trace, buf.Bytes()); err != nil {
				t.Fatalf("%v\n%s", err, buf.String())
			}
		}
	})
}
