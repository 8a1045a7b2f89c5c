package core

import (
	"net/netip"
	"reflect"
	"testing"
	"testing/synctest"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

// memberTrace is a trace whose flows each answered at TTL 2 from one of
// the fake fabric's members, undecided between places at TTL 2.
func memberTrace(f *fabric) report.Trace {
	tr := report.Trace{Source: client, Target: netip.AddrPortFrom(server, 3306),
		Diagnosis: report.Diagnosis{Hypotheses: []report.Hypothesis{{TTL: 2}}}}
	seen := map[int]bool{}
	for sp := uint16(30000); len(seen) < f.width; sp++ {
		m := f.memberOf(hash.FiveTuple{SrcPort: sp})
		if seen[m] {
			continue
		}
		seen[m] = true
		tr.Flows = append(tr.Flows, report.FlowTrace{Sport: sp, State: hash.StateOK, Hops: []report.TraceHop{
			{TTL: 1, Addr: r1, Probes: 2, Answers: 2}, {TTL: 2, Addr: member(m), Probes: 2, Answers: 2}}})
	}
	return tr
}

// Two members' addresses that spend one budget are found one router's by
// draining it; the others, each its own router, are not grouped. Where the
// routers do not rate-limit, two rounds drain nothing and the test stops.
func TestRateLimitTestGroupsOneBudget(t *testing.T) {
	for _, limited := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			f := newFabric(4, 0, "")
			f.rateLimited = limited
			f.budgetOf = map[netip.Addr]netip.Addr{member(1): member(0)}
			env := testEnv(f)
			tr := &tracer{ctx: t.Context(), cfg: traceConfig(3), env: env, rng: env.rng(), set: single(f)}
			got, interrupted, err := tr.rateLimitTest(memberTrace(f), func(*report.RateLimitTest) bool { return false })
			if err != nil || interrupted || got == nil {
				t.Fatalf("rate-limit test: %+v, %v, interrupted %v", got, err, interrupted)
			}
			want := [][]netip.Addr{{member(0), member(1)}}
			if !limited {
				want = nil
			}
			if !reflect.DeepEqual(got.Groups, want) {
				t.Errorf("limited %v: groups %v, want %v (%+v)", limited, got.Groups, want, got)
			}
			if !limited && (got.Rounds != 2 || got.Drained != 0) {
				t.Errorf("routers that do not limit: %+v, want 2 rounds that drained nothing", got)
			}
		})
	}
}

// Once a round's groups let the diagnosis decide, no further round runs.
func TestRateLimitTestStopsWhenDecided(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 0, "")
		f.rateLimited = true
		f.budgetOf = map[netip.Addr]netip.Addr{member(1): member(0), member(2): member(0), member(3): member(0)}
		env := testEnv(f)
		tr := &tracer{ctx: t.Context(), cfg: traceConfig(3), env: env, rng: env.rng(), set: single(f)}
		calls := 0
		got, _, err := tr.rateLimitTest(memberTrace(f), func(l *report.RateLimitTest) bool { calls++; return len(l.Groups) > 0 })
		if err != nil || got == nil || len(got.Groups) != 1 || len(got.Groups[0]) != 2 || got.Rounds != 2 || calls != 1 {
			t.Errorf("found %+v after %d calls, %v; want the first pair grouped, then stop", got, calls, err)
		}
	})
}
