package core

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
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
		fault   string
		flows   int
		look    bool
		limited bool
	}{{"blackhole-fwd", 4, true, false}, {"blackhole-fwd", 40, true, false}, {"blackhole-ret", 4, false, false}, {"blackhole-fwd", 4, true, true}} {
		t.Run(fmt.Sprintf("%s-%d-limited-%v", c.fault, c.flows, c.limited), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 1, c.fault)
				f.rateLimited = c.limited
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

// checkLook checks a look against the fabric's paths: the untraced flows
// crossing its place were seen or counted unseen, and Flows of them were
// traced (without a rate limit: all were seen).
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
	if got := l.Untraced.OK + l.Untraced.Fail + l.Untraced.Flaky; got > left || len(l.Addrs) != 1 {
		t.Errorf("look %+v: %d left untraced crossing it, the fabric says %d", l, got, left)
	}
	// r1 is every flow's first hop: each untraced flow the look did not
	// see crossing it, it did not see at all; unseen and left add up to
	// the fabric's. Without a rate limit it sees every one.
	if u := tr.Untraced; l.Unseen == nil || l.Untraced.OK+l.Unseen.OK != u.OK || l.Untraced.Fail+l.Unseen.Fail != u.Fail ||
		(!f.rateLimited && *l.Unseen != report.Untraced{}) {
		t.Errorf("look %+v (unseen %v) with %+v untraced, want every one left or unseen, none unseen without a rate limit", l, l.Unseen, u)
	}
	bound := TracedBound(cfg.TraceOptions, len(cfg.Ports))
	if l.Picked != len(tr.Flows)-bound {
		t.Errorf("look picked %d, %d traced beyond the first pick's %d", l.Picked, len(tr.Flows)-bound, bound)
	}
	// It names its flows: traced, and crossing its place.
	if len(l.Ports) != l.Picked || !slices.IsSorted(l.Ports) {
		t.Errorf("look ports %v, want its %d picks, sorted", l.Ports, l.Picked)
	}
	for _, sp := range l.Ports {
		if !traced[sp] || f.place(sp, l.TTL) != l.Addrs[0].String() {
			t.Errorf("look port %d (traced %v) crosses %s at TTL %d, not %v", sp, traced[sp], f.place(sp, l.TTL), l.TTL, l.Addrs)
		}
	}
	// A rate-limited r1 answers the look's probes of a few flows at most.
	if want := min(bound+cfg.Flows, len(cfg.Ports)); !f.rateLimited && (len(tr.Flows) != want || crossed < want-bound) {
		t.Errorf("%d flows traced, %d of them crossing %v at TTL %d; want %d, at least %d crossing", len(tr.Flows), crossed, l.Addrs, l.TTL, want, want-bound)
	}
}

// byPlace: a flow that answered from the place crosses it, one that
// answered elsewhere or was silent there is of the rest, and only the
// silent ones (or those never probed that far) are unseen.
func TestByPlace(t *testing.T) {
	pA, pB := netip.MustParseAddr("198.19.1.2"), netip.MustParseAddr("198.19.2.2")
	paths := map[uint16][]report.TraceHop{
		1: {{TTL: 1, Addr: r1}, {TTL: 2, Addr: pA}},
		2: {{TTL: 1, Addr: r1}, {TTL: 2, Addr: pB}},
		3: {{TTL: 1, Addr: r1}, {TTL: 2}},
		4: {{TTL: 1, Addr: r1}},
		5: {{TTL: 1}, {TTL: 2, Addr: pB, Others: []netip.Addr{pA}}},
	}
	var flows []hash.Judged
	for sp := range uint16(5) {
		flows = append(flows, hash.Judged{FlowStats: hash.FlowStats{Tuple: hash.FiveTuple{SrcPort: sp + 1}}})
	}
	crossing, rest, unseen := byPlace(flows, report.Look{TTL: 2, Addrs: []netip.Addr{pA}}, func(sp uint16) []report.TraceHop { return paths[sp] })
	ports := func(js []hash.Judged) []uint16 {
		var out []uint16
		for _, j := range js {
			out = append(out, j.Tuple.SrcPort)
		}
		return out
	}
	if got := ports(crossing); !slices.Equal(got, []uint16{1, 5}) {
		t.Errorf("crossing %v, want 1 and 5", got)
	}
	if got := ports(rest); !slices.Equal(got, []uint16{2, 3, 4}) {
		t.Errorf("rest %v, want 2, 3 and 4", got)
	}
	if got := ports(unseen); !slices.Equal(got, []uint16{3, 4}) {
		t.Errorf("unseen %v, want 3 and 4", got)
	}
}
