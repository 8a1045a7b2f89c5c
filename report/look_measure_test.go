package report

import (
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// simPick picks traced flows as internal/core's pickTraced does: every
// failing one up to n, a quarter as many flaky, healthy ones up to 2n+n/4.
func simPick(flows []FlowTrace, n int) (picked []FlowTrace, u Untraced) {
	by := map[hash.State][]FlowTrace{}
	for _, f := range flows {
		by[f.State] = append(by[f.State], f)
	}
	room := min(len(flows), 2*n+max(n/4, 1))
	keep := map[uint16]bool{}
	for _, st := range []hash.State{hash.StateFail, hash.StateFlaky, hash.StateOK} {
		most := map[hash.State]int{hash.StateFail: n, hash.StateFlaky: max(n/4, 1), hash.StateOK: room}[st]
		l := by[st]
		k := min(most, room, len(l))
		for i := 0; i < k; i++ {
			keep[l[i*len(l)/k].Sport] = true
			room--
		}
	}
	for _, f := range flows {
		switch {
		case keep[f.Sport]:
			picked = append(picked, f)
		case f.State == hash.StateOK:
			u.OK++
		case f.State == hash.StateFail:
			u.Fail++
		case f.State == hash.StateFlaky:
			u.Flaky++
		}
	}
	return picked, u
}

// TestSimulatedSecondLook measures the second look offline on the
// recorded traces that traced every flow: pick n failing flows and so on
// from each, diagnose, take the look from the flows recorded (every one
// crossing its place, up to n), diagnose again, and count the right
// verdicts of the pick, the look and the whole trace (README, "A second
// look"). ECMPSCAN_LOOK_SIM=n runs it; ECMPSCAN_LOOK_SIM_BY_STATE=1 weighs
// the look's flows by state, as if picked at random.
func TestSimulatedSecondLook(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ECMPSCAN_LOOK_SIM"))
	if n <= 0 {
		t.Skip("set ECMPSCAN_LOOK_SIM to the flows to pick (--flows)")
	}
	recs := loadRecorded(t)
	names := slices.Sorted(maps.Keys(recs))
	var pick, look, full, looked, total int
	for _, name := range names {
		r := recs[name]
		tr, err := r.decode()
		if err != nil || r.Sample != nil || tr.Untraced != (Untraced{}) || len(tr.Flows) <= 2*n+n/4 {
			continue
		}
		total++
		sub, u := simPick(tr.Flows, n)
		d1 := WithFirstHop(DiagnoseSample(sub, WeighBack(sub, u, nil)), sub, tr.Gateway)
		d2 := d1
		if l := d1.Look; l != nil {
			looked++
			d2 = simLook(tr, sub, u, *l, n)
		}
		right1, right2 := r.check(d1) == "", r.check(d2) == ""
		whole := WithFirstHop(DiagnoseSample(tr.Flows, Sample{}), tr.Flows, tr.Gateway)
		pick, look, full = pick+boolInt(right1), look+boolInt(right2), full+boolInt(r.check(whole) == "")
		if right1 != right2 {
			t.Logf("%s: right picked %v, after the look %v (%s -> %s)", name, right1, right2, d1.Direction, d2.Direction)
		}
	}
	t.Logf("n=%d: %d traces, %d looked at again; right: picked %d, after the look %d, traced in full %d", n, total, looked, pick, look, full)
}

// simLook is the diagnosis after the look: the recorded flows that cross
// its place, up to n of them spread over the range, traced too.
func simLook(tr Trace, sub []FlowTrace, u Untraced, l Look, n int) Diagnosis {
	in := map[uint16]bool{}
	for _, f := range sub {
		in[f.Sport] = true
	}
	var crossing []FlowTrace
	for _, f := range tr.Flows {
		if !in[f.Sport] && l.CrossedBy(f.Hops) {
			crossing = append(crossing, f)
		}
	}
	extra := crossing
	if len(crossing) > n {
		extra = make([]FlowTrace, n)
		for i := range extra {
			extra[i] = crossing[i*len(crossing)/n]
		}
	}
	all, took := stateCount(crossing), stateCount(extra)
	left := Untraced{OK: all.OK - took.OK, Fail: all.Fail - took.Fail}
	u = Untraced{OK: u.OK - took.OK, Fail: u.Fail - took.Fail, Flaky: u.Flaky}
	var looked *Looked
	if os.Getenv("ECMPSCAN_LOOK_SIM_BY_STATE") == "" {
		looked = &Looked{Look: l, Untraced: left}
	}
	flows := append(slices.Clone(sub), extra...)
	return WithFirstHop(DiagnoseSample(flows, WeighBack(flows, u, looked)), flows, tr.Gateway)
}
