package report

import (
	"math"
	"net/netip"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	p2 := netip.MustParseAddr("198.18.255.12")
	p3 := netip.MustParseAddr("198.18.255.13")
	fwd := func(addr netip.Addr, score float64) Hypothesis {
		return Hypothesis{Direction: DirectionForward, Kind: HypHop, Addr: addr, TTL: 2, Score: score}
	}
	ret := func(score float64) Hypothesis {
		return Hypothesis{Direction: DirectionReturn, Kind: HypReturnPath, Score: score}
	}
	pair := func(f, r Hypothesis, score float64) Hypothesis {
		f.And, f.Score = &r, score
		return f
	}
	rateLimited := decisiveWhereRateLimited
	for _, tc := range []struct {
		name      string
		hs        []Hypothesis
		need      float64
		want      Direction
		margin    float64
		rival     int // index into hs; -1 for none
		separates bool
	}{
		{"alone", []Hypothesis{fwd(p2, 9)}, decisive, DirectionForward, math.Inf(1), -1, false},
		{"no better than chance", []Hypothesis{fwd(p2, -1), ret(-2)}, decisive, DirectionUnknown, 0, -1, false},
		{"the other direction 20 to 1 behind", []Hypothesis{fwd(p2, 9), ret(6)}, decisive, DirectionForward, 3, 1, false},
		{"the same, where routers rate-limit", []Hypothesis{fwd(p2, 9), ret(6)}, rateLimited, DirectionUnknown, 3, 1, true},
		{"the other direction 1000 to 1 behind, rate-limited", []Hypothesis{fwd(p2, 9), ret(2)}, rateLimited, DirectionForward, 7, 1, false},
		{"another place close, the other direction farther", []Hypothesis{fwd(p2, 9), fwd(p3, 8), ret(6)}, decisive, DirectionForward, 1, 1, true},
		// The direction is asked first: a place close behind does not
		// hide the other direction within the ratio it needs.
		{"another place close, the other direction within 100 to 1", []Hypothesis{fwd(p2, 9), fwd(p3, 8), ret(6)}, rateLimited, DirectionUnknown, 3, 2, true},
		{"the same place twice", []Hypothesis{fwd(p2, 9), fwd(p2, 8.5), ret(1)}, decisive, DirectionForward, 8, 2, false},
		// A pair is weighed against its return half alone, not against
		// the forward half alone far behind.
		{"a pair over its return half", []Hypothesis{pair(fwd(p2, 2), ret(7), 10), ret(7), fwd(p2, 2)}, decisive, DirectionForward, 3, 1, false},
		{"a pair over its return half, rate-limited", []Hypothesis{pair(fwd(p2, 2), ret(7), 10), ret(7), fwd(p2, 2)}, rateLimited, DirectionUnknown, 3, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := decide(tc.hs, tc.need)
			if v.direction != tc.want || math.Abs(v.margin-tc.margin) > 1e-9 && !(math.IsInf(v.margin, 1) && math.IsInf(tc.margin, 1)) {
				t.Errorf("got %s at %v, want %s at %v", v.direction, v.margin, tc.want, tc.margin)
			}
			switch {
			case tc.rival < 0 && v.rival != nil:
				t.Errorf("rival %+v, want none", *v.rival)
			case tc.rival >= 0 && (v.rival == nil || v.rival != &tc.hs[tc.rival]):
				t.Errorf("rival %+v, want hypothesis %d", v.rival, tc.rival)
			}
			if (v.separate != "") != tc.separates {
				t.Errorf("separate %q, want one: %v", v.separate, tc.separates)
			}
		})
	}
}

func TestDirectionNeedWhereRoutersRateLimit(t *testing.T) {
	a := &analysis{}
	if a.directionNeed() != decisive {
		t.Errorf("no rate limit: need %v, want %v", a.directionNeed(), decisive)
	}
	a.rateLimited = map[int]bool{3: true}
	if a.directionNeed() != decisiveWhereRateLimited || decisiveWhereRateLimited <= decisive {
		t.Errorf("rate-limited: need %v, want %v, above %v", a.directionNeed(), decisiveWhereRateLimited, decisive)
	}
}

// A recorded link dead both ways beside a silent q1, every router
// rate-limiting its errors: a return member fits 10 to 1 better than an
// unseen forward member, and that is not enough there. It is unknown, and
// says why; at 10 to 1 it would be return, which is wrong.
func TestRateLimitedDirectionNeedsMore(t *testing.T) {
	r, tr := recordedFixture(t, "w2x2-s2289114363-inbound-fixed-link-drop-p2-q2-silent-q1-ipid-shared-ratelimit1000")
	d := DiagnoseSample(tr.Flows, tr.Sample())
	if d.Direction != DirectionUnknown || !strings.Contains(d.Text, "short of the 100 to 1 a direction needs where routers rate-limit") ||
		!strings.Contains(d.Text, "trace --responder") {
		t.Errorf("got %s", describe(d))
	}
	if v := decide(d.Hypotheses, decisive); v.direction != DirectionReturn || r.Want != DirectionForward {
		t.Errorf("at 10 to 1: %s, want return (the fault: %s)", v.direction, r.Want)
	}
}

// A verdict where routers rate-limit says its ratio reads surer than it
// is: measured, verdicts there are wrong more often than their ratio says.
func TestRateLimitedVerdictSaysItIsLessSure(t *testing.T) {
	_, tr := recordedFixture(t, "w13x0-s3716948651-outgoing-flow-blackhole-ret-p6-ipid-shared-ratelimit1000")
	d := DiagnoseSample(tr.Flows, tr.Sample())
	if d.Direction != DirectionReturn || math.IsInf(d.Margin, 1) ||
		!strings.Contains(d.Text, "times likelier than") || !strings.Contains(d.Text, "less sure than that reads: where routers rate-limit their errors, as here") {
		t.Errorf("got %s", describe(d))
	}
	if d := Diagnose(linkTrace().Flows); !strings.Contains(d.Text, "times likelier than") || strings.Contains(d.Text, "less sure than that reads") {
		t.Errorf("no rate limit, yet: %s", d.Text)
	}
}
