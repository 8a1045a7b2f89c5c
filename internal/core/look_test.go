package core

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

// place is where the fake fabric sends a flow at a TTL: r1, then its
// member (the fabric's own hash, the ground truth).
func (f *fabric) place(sport uint16, ttl int) string {
	switch ttl {
	case 1:
		return r1.String()
	case 2:
		return member(f.memberOf(hash.FiveTuple{SrcPort: sport})).String()
	}
	return ""
}

// TestTraceSecondLook: a forward verdict after r1 is looked at again
// (every untraced flow crosses r1, so the look traces Flows more of them,
// or all that are left when fewer are); a return verdict no forward
// hypothesis comes near is not. The counts are
// checked against the fabric's own paths, and the probes sent against
// HopProbes, the bound --max-probes and the responder's budget count with.
func TestTraceSecondLook(t *testing.T) {
	for _, c := range []struct {
		fault string
		flows int
		look  bool
	}{{"blackhole-fwd", 4, true}, {"blackhole-fwd", 40, true}, {"blackhole-ret", 4, false}} {
		t.Run(fmt.Sprintf("%s-%d", c.fault, c.flows), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 1, c.fault)
				cfg := traceConfig(128)
				cfg.Flows = c.flows
				tr, err := Trace(context.Background(), cfg, testEnv(f))
				if err != nil {
					t.Fatal(err)
				}
				u, l := tr.Untraced, tr.Looked
				if n := len(tr.Flows) + u.OK + u.Fail + u.Flaky; n != len(cfg.Ports) {
					t.Errorf("%d traced and %+v untraced, want %d in all", len(tr.Flows), u, len(cfg.Ports))
				}
				if bound := TracedBound(cfg.TraceOptions, len(cfg.Ports)); !c.look && (l != nil || len(tr.Flows) != bound) {
					t.Fatalf("looked %+v with %d flows traced, want no look and %d: %s", l, len(tr.Flows), bound, tr.Diagnosis.Text)
				}
				if most := len(cfg.Ports)*cfg.Count + HopProbes(cfg.TraceOptions, len(cfg.Ports)); f.sent > most {
					t.Errorf("sent %d probes, beyond the bound %d", f.sent, most)
				}
				if !c.look {
					return
				}
				checkLook(t, f, cfg, tr)
			})
		})
	}
}

// checkLook checks a look against the fabric's paths: every untraced flow
// crossing its place was seen, and Flows of them were traced.
func checkLook(t *testing.T, f *fabric, cfg TraceConfig, tr report.Trace) {
	t.Helper()
	l := tr.Looked
	if l == nil {
		t.Fatalf("no second look at a forward verdict: %s", tr.Diagnosis.Text)
	}
	traced := map[uint16]bool{}
	crossed := 0
	for _, fl := range tr.Flows {
		traced[fl.Sport] = true
		if f.place(fl.Sport, l.TTL) == l.Addrs[0].String() {
			crossed++
		}
	}
	left := 0
	for _, sp := range cfg.Ports {
		if !traced[sp] && f.place(sp, l.TTL) == l.Addrs[0].String() {
			left++
		}
	}
	if got := l.Untraced.OK + l.Untraced.Fail + l.Untraced.Flaky; got != left || len(l.Addrs) != 1 {
		t.Errorf("look %+v: %d left untraced crossing it, the fabric says %d", l, got, left)
	}
	bound := TracedBound(cfg.TraceOptions, len(cfg.Ports))
	if want := min(bound+cfg.Flows, len(cfg.Ports)); len(tr.Flows) != want || crossed < want-bound {
		t.Errorf("%d flows traced, %d of them crossing %v at TTL %d; want %d, at least %d crossing", len(tr.Flows), crossed, l.Addrs, l.TTL, want, want-bound)
	}
}
