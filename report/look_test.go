package report

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// lookFixture is a recorded trace (internal/e2e) of a link dead toward
// the client into p10 of 16, behind a silent r2 and rate-limited routers,
// diagnosed before the second look existed: three of its failing flows
// cross p11, which none of its 32 traced healthy flows happened to cross,
// and a forward fault at p11 plus a return one beat the return fault
// alone. The flows a look at p11 would trace are made from its healthy
// flows, with p11 at TTL 2: healthy through p11 as through the others.
const lookFixture = "w16x0-s169791970-outgoing-fixed-link-oneway-r2-p10-silent-r2-ratelimit1000"

func TestLookAtTheRouterFewFlowsCross(t *testing.T) {
	r, tr := recordedFixture(t, lookFixture)
	p11 := netip.MustParseAddr("198.19.11.2")
	d := DiagnoseSample(tr.Flows, r.sample(tr))
	if d.Direction != DirectionForward || d.Look == nil || d.Look.TTL != 2 || !slices.Equal(d.Look.Addrs, []netip.Addr{p11}) {
		t.Fatalf("%s, look %+v; want forward, and a look at %s at TTL 2", d.Direction, d.Look, p11)
	}
	flows := slices.Clone(tr.Flows)
	sport := uint16(50000)
	for _, f := range tr.Flows {
		if f.State != hash.StateOK || len(f.Hops) < 2 || sport == 50014 {
			continue
		}
		f.Sport, f.Hops = sport, slices.Clone(f.Hops)
		f.Hops[1].Addr, f.Hops[1].Others, f.Hops[1].IDs = p11, nil, nil
		f.Hops[1].Answers = max(f.Hops[1].Answers, 1)
		flows = append(flows, f)
		sport++
	}
	// Every flow through p11 is now traced, none left: they stand for
	// themselves. Weighed by state, as if picked at random, they would
	// swell p11's share, and the verdict would stay forward.
	u := tr.Untraced
	u.OK -= int(sport - 50000)
	after := DiagnoseSample(flows, WeighBack(flows, u, &Looked{Look: *d.Look}))
	if after.Direction != r.Want {
		t.Errorf("after the look: %s, want %s", describe(after), r.Want)
	}
}

// A return verdict that no forward hypothesis comes near needs no look.
func TestNoLookAtADecidedReturn(t *testing.T) {
	const r1 = "198.18.255.1"
	var flows []FlowTrace
	for i := range 40 {
		st, tail := hash.StateOK, "="
		if i%4 == 0 {
			st, tail = hash.StateFail, "*"
		}
		flows = append(flows, flowOf(uint16(1000+i), st, r1, fmt.Sprintf("198.19.%d.2", 1+i%3), tail))
	}
	if d := Diagnose(flows); d.Direction != DirectionReturn || d.Look != nil {
		t.Errorf("%s, look %+v; want return and no look", describe(d), d.Look)
	}
}

// lookedFixture is a recorded trace (internal/e2e) of a SYN-ACK dropper at
// p8 of 8, rate-limited routers answering from their router IDs: a look
// at p7 traced six more healthy flows through it, when r2 had earned
// answers back, and r2 answered them where it had left p7's failing
// flows of the first pass silent. Weighed against the look's flows, that
// silence made a forward fault after p7 (and the return one beside it)
// beat the return fault alone; weighed against the first pass's, it is
// r2 out of answers, as for every other p.
const lookedFixture = "w8x0-s502725923-router-id-fixed-drop-synack-p8-ratelimit1000-v6"

func TestLookedFlowsWeighedApart(t *testing.T) {
	r, tr := recordedFixture(t, lookedFixture)
	if l := tr.Looked; l == nil || len(l.Ports) != 6 {
		t.Fatalf("looked %+v, want the look's six flows", l)
	}
	if d := DiagnoseSample(tr.Flows, tr.Sample()); d.Direction != r.Want {
		t.Errorf("%s, want %s", describe(d), r.Want)
	}
	tr.Looked.Ports = nil
	// Weighed together, it was called forward; now that a direction
	// needs 100 to 1 where routers rate-limit, it is unknown: not right.
	if d := DiagnoseSample(tr.Flows, tr.Sample()); d.Direction == r.Want {
		t.Errorf("the look's flows weighed with the first pass's: %s, want not %s (as before they were told apart)", describe(d), r.Want)
	}
}

// recordedFixture reads and decodes one recorded trace by name.
func recordedFixture(t *testing.T, name string) (recordedTrace, Trace) {
	t.Helper()
	r, err := readRecorded(filepath.Join("testdata", "recorded", name+".json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := r.decode()
	if err != nil {
		t.Fatal(err)
	}
	return r, tr
}
