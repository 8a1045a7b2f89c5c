package report

import (
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// The hypotheses on synthetic path sets: each fault's pattern must rank its
// own hypothesis first, with the flows it explains counted.

func bestOf(t *testing.T, fs []FlowTrace) (Diagnosis, Hypothesis) {
	t.Helper()
	d := Diagnose(fs)
	if len(d.Hypotheses) == 0 {
		t.Fatalf("no hypotheses: %s", describe(d))
	}
	return d, d.Hypotheses[0]
}

func TestHypothesesRankTheirOwnFault(t *testing.T) {
	const r1, r2 = "198.18.255.1", "198.18.255.99"
	p := []string{"198.18.255.11", "198.18.255.12", "198.18.255.13", "198.18.255.14"}
	var sport uint16
	flows := func(pattern func(i, k int) (hash.State, []string)) []FlowTrace {
		var out []FlowTrace
		for i := range p {
			for k := range 12 {
				st, hops := pattern(i, k)
				sport++
				out = append(out, flowOf(sport, st, hops...))
			}
		}
		return out
	}
	ok := func(i int) []string { return []string{r1, p[i], r2, "="} }
	t.Run("dead next hop of one member", func(t *testing.T) {
		fs := flows(func(i, k int) (hash.State, []string) {
			if i == 2 && k%3 == 0 {
				return hash.StateFail, []string{r1, p[i], "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
		_, h := bestOf(t, fs)
		if h.Direction != DirectionForward || h.Addr.String() != p[2] || h.Explains != 4 || h.Contradicts != 0 || h.And != nil {
			t.Errorf("best %+v, want forward after %s explaining 4", h, p[2])
		}
		if want := 4.0 / 12; math.Abs(h.Share-want) > 1e-9 {
			t.Errorf("share %v, want %v (of the flows through %s)", h.Share, want, p[2])
		}
	})
	t.Run("answers lost on the way back", func(t *testing.T) {
		fs := flows(func(i, k int) (hash.State, []string) {
			if k%4 == 1 {
				return hash.StateFail, []string{r1, p[i], r2, "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
		d, h := bestOf(t, fs)
		if d.Direction != DirectionReturn || h.Kind != HypReturnPath || h.Explains != 12 {
			t.Errorf("best %+v: %s", h, describe(d))
		}
	})
	t.Run("a link dead both ways needs two faults", func(t *testing.T) {
		fs := flows(func(i, k int) (hash.State, []string) {
			switch {
			case i == 0 && k%2 == 0:
				return hash.StateFail, []string{r1, p[i], "*", "*"}
			case k%6 == 1:
				return hash.StateFail, []string{r1, p[i], r2, "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
		d, h := bestOf(t, fs)
		if d.Direction != DirectionForward || h.Addr.String() != p[0] || h.And == nil || h.And.Direction != DirectionReturn ||
			h.Explains != 6 || h.And.Explains != 8 {
			t.Errorf("best %+v: %s", h, describe(d))
		}
		if len(d.Suspects) < 2 || d.Suspects[1].Direction != DirectionReturn || d.Suspects[1].Addr.IsValid() {
			t.Errorf("suspects: %s", describe(d))
		}
		// How sure the direction is: the pair against its return half
		// alone, not against the forward half alone, which the return
		// half's eight flows put far behind.
		i := slices.IndexFunc(d.Hypotheses, func(h Hypothesis) bool { return h.And == nil && h.Direction == DirectionReturn })
		if i < 0 || d.Margin != h.Score-d.Hypotheses[i].Score {
			t.Errorf("margin %v, want over the best return fault alone (%d): %s", d.Margin, i, describe(d))
		}
		if !regexp.MustCompile(`times likelier than (the return|a return) [^;]* alone\)`).MatchString(d.Text) {
			t.Errorf("text does not weigh the pair against its return half: %s", d.Text)
		}
	})
	t.Run("a single fault does not take a second one", func(t *testing.T) {
		fs := flows(func(i, k int) (hash.State, []string) {
			if i == 0 && k%2 == 0 {
				return hash.StateFail, []string{r1, p[i], "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
		if _, h := bestOf(t, fs); h.And != nil {
			t.Errorf("best %+v names a second fault", h)
		}
	})
	// Deaths spread over every member before r2: a quarter of the flows
	// fail, as one bad member of the four would fail on the way back; half
	// of them, as an unseen member beside r2 would on the way out.
	spread := func(every int) []FlowTrace {
		return flows(func(i, k int) (hash.State, []string) {
			if k%every == 1 {
				return hash.StateFail, []string{r1, p[i], "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
	}
	t.Run("spread deaths, a quarter", func(t *testing.T) {
		d, h := bestOf(t, spread(4))
		if d.Direction != DirectionReturn || h.Kind != HypReturnMember || h.TTL != 2 {
			t.Errorf("got %s", describe(d))
		}
	})
	t.Run("spread deaths, a half", func(t *testing.T) {
		d, h := bestOf(t, spread(2))
		if d.Direction != DirectionForward || h.Kind != HypMember || h.TTL != 3 || len(h.Behind) != 4 {
			t.Errorf("got %s", describe(d))
		}
	})
	t.Run("spread deaths, a quarter of the sweep, half of the traced", func(t *testing.T) {
		// A sweep traces every failing port but only some healthy ones:
		// the traced share (a half) is not the sweep's (a quarter). The
		// weights put it back.
		var traced []FlowTrace
		for _, f := range spread(4) {
			if f.State == hash.StateFail || f.Sport%3 == 0 {
				traced = append(traced, f)
			}
		}
		ok, fail := countState(traced, hash.StateOK), countState(traced, hash.StateFail)
		if d := Diagnose(traced); d.Direction == DirectionReturn {
			t.Fatalf("bad fixture: %d ok, %d fail already says return", ok, fail)
		}
		d := DiagnoseSample(traced, Sample{Fail: 1, OK: 36 / float64(ok)})
		if h := d.Hypotheses[0]; d.Direction != DirectionReturn || h.Kind != HypReturnMember || math.Abs(h.Share-0.25) > 0.05 {
			t.Errorf("weighted: %s (share %v)", describe(d), h.Share)
		}
	})
	t.Run("spread deaths, a third, told apart by a responder", func(t *testing.T) {
		fs := spread(3)
		for _, arrived := range []bool{true, false} {
			seen := map[uint16]bool{}
			for _, f := range fs {
				seen[f.Sport] = f.State == hash.StateOK || arrived
			}
			d := DiagnoseSample(fs, Sample{Arrived: seen})
			want := map[bool]Direction{true: DirectionReturn, false: DirectionForward}[arrived]
			if d.Direction != want || d.Margin < decisive {
				t.Errorf("SYNs arrived %v: %s (margin %v)", arrived, describe(d), d.Margin)
			}
		}
	})
	t.Run("spread deaths, a third, tell neither", func(t *testing.T) {
		d, _ := bestOf(t, spread(3))
		if d.Direction != DirectionUnknown || d.Separate == "" || d.Margin >= decisive {
			t.Errorf("got %s (margin %v)", describe(d), d.Margin)
		}
	})
	t.Run("a silent member that healthy flows cross speaks for return", func(t *testing.T) {
		fs := flows(func(i, k int) (hash.State, []string) {
			switch {
			case i == 3 && k%4 == 1:
				return hash.StateFail, []string{r1, "*", "*", "*"}
			case i == 3:
				return hash.StateOK, []string{r1, "*", r2, "="}
			case k%4 == 1:
				return hash.StateFail, []string{r1, p[i], "*", "*"}
			}
			return hash.StateOK, ok(i)
		})
		d, h := bestOf(t, fs)
		if d.Direction != DirectionReturn || h.Kind != HypReturnMember || h.TTL != 2 || h.Explains != 12 {
			t.Errorf("best %+v: %s", h, describe(d))
		}
	})
}

func TestHypothesesScoreAgainstChance(t *testing.T) {
	// With heavy background loss a lone failing flow is chance: no
	// hypothesis beats it, and the verdict does not pretend one does.
	var fs []FlowTrace
	for k := range 20 {
		f := flowOf(uint16(k+1), hash.StateFlaky, "198.18.255.1", "198.18.255.11", "=")
		fs = append(fs, f)
	}
	fs = append(fs, flowOf(40, hash.StateOK, "198.18.255.1", "198.18.255.11", "="))
	fs = append(fs, flowOf(41, hash.StateFail, "198.18.255.1", "198.18.255.11", "*"))
	d := Diagnose(fs)
	if d.Direction != DirectionUnknown || len(d.Suspects) != 0 || !(strings.Contains(d.Text, "better than the background loss") || strings.Contains(d.Text, "no better than chance")) {
		t.Errorf("got %s", describe(d))
	}
}

// An unseen member behind one router that answers and one that is silent
// for every flow: the member explains every failing flow, which dies
// behind either. Without it this forward fault was called return, over a
// million to one; with it a return member at the stage before (the silent
// p2) fits as well, and the verdict is forward or an honest unknown, with
// the member among the two.
func TestHypothesesMemberBehindASilentHop(t *testing.T) {
	l := newLab(2, 2, false, "p2")
	fs := l.flows(96, on("q2", 2))
	d := Diagnose(fs)
	if (d.Direction != DirectionForward && d.Direction != DirectionUnknown) || len(d.Suspects) < 2 {
		t.Fatalf("got %s", describe(d))
	}
	var member *Hypothesis
	for i, h := range d.Hypotheses {
		if h.Kind == HypMember {
			member = &d.Hypotheses[i]
			break
		}
	}
	if member == nil || member.TTL != 3 || len(member.Behind) != 1 || l.names[member.Behind[0]] != "p1" || member.BehindSilent != 1 ||
		member.Explains != countState(fs, hash.StateFail) {
		t.Fatalf("no member at TTL 3 behind p1 and the silent p2 explaining every failing flow: %s", describe(d))
	}
	if !strings.Contains(hypothesisEvidence(*member), "and 1 hop silent for every flow") {
		t.Errorf("evidence %q", hypothesisEvidence(*member))
	}
}

// Return paths traced back are read knowing the failing flows' SYNs
// arrived: a pattern that a fault toward the responder would explain as
// well (the failing flows answer up to one stage and no further) is still
// placed on the way toward the client.
func TestReturnPathsAreReadTowardTheClient(t *testing.T) {
	const r2, q1, r1 = "198.18.255.99", "198.18.255.41", "198.18.255.1"
	p := []string{"198.18.255.11", "198.18.255.13", "198.18.255.14"}
	var flows []FlowTrace
	for i := range 60 {
		sport := uint16(30000 + i)
		f := FlowTrace{Sport: sport, State: hash.StateOK, Sent: 3, Received: 3}
		back := flowOf(sport, hash.StateOK, r2, q1, p[i%3], r1, "=")
		if i%4 == 0 {
			f.State, f.Received = hash.StateFail, 0
			back = flowOf(sport, hash.StateFail, r2, q1, "*", "*", "*")
		}
		f.ReturnHops = back.Hops
		flows = append(flows, f)
	}
	rp := DiagnoseReturnPaths(flows, netip.Addr{})
	if rp.Direction != DirectionReturn || len(rp.Suspects) == 0 || rp.Suspects[0].Direction != DirectionReturn {
		t.Fatalf("return paths: %s, suspects %+v", rp.Direction, rp.Suspects)
	}
	s := rp.Suspects[0]
	if !(s.Addr.String() == q1 || (s.Kind == "member" && len(s.Behind) == 1 && s.Behind[0].String() == q1)) {
		t.Errorf("suspects[0] = %s, want right after %s", suspectName(s), q1)
	}
	for _, h := range rp.Hypotheses {
		if h.Direction == DirectionForward && h.Explains > 0 {
			t.Errorf("a fault toward the responder explains %d flows whose SYNs arrived: %+v", h.Explains, h)
		}
	}
}

// A link dead both ways where the way out loses three traced flows only:
// the return half explains the rest, and what tells the forward half from
// silences the return fault explains is that p3's healthy flows, many of
// them, never reach q4, which every other p reaches. Where they do reach
// q4, and p3's next hop is silent now and then for healthy flows too (a
// rate limit), the same three flows are such silences, and the return
// fault alone is the verdict.
func TestHypothesesLinkAvoidedByHealthyFlows(t *testing.T) {
	const r1, r2 = "198.18.255.1", "198.18.255.99"
	p := func(i int) string { return fmt.Sprintf("198.18.255.%d", 10+i) }
	q := func(j int) string { return fmt.Sprintf("198.18.255.%d", 40+j) }
	build := func(avoided bool) []FlowTrace {
		var fs []FlowTrace
		add := func(st hash.State, hops ...string) { fs = append(fs, flowOf(uint16(len(fs)+1), st, hops...)) }
		for i := 1; i <= 3; i++ {
			for j := 1; j <= 4; j++ {
				if i == 3 && j == 4 && avoided {
					continue
				}
				for k := range 8 {
					if i == 3 && k == 0 && !avoided {
						add(hash.StateOK, r1, p(i), "*", r2, "=")
						continue
					}
					add(hash.StateOK, r1, p(i), q(j), r2, "=")
				}
				if j < 4 {
					add(hash.StateFail, r1, p(i), q(j), "*", "*")
				}
			}
		}
		for range 3 {
			add(hash.StateFail, r1, p(3), "*", "*", "*")
		}
		return fs
	}
	d := Diagnose(build(true))
	if d.Direction != DirectionForward || len(d.Suspects) == 0 || d.Suspects[0].Addr.String() != p(3) || d.Suspects[0].Next.String() != q(4) {
		t.Fatalf("p3's healthy flows avoid q4: got %s", describe(d))
	}
	if h := d.Hypotheses[0]; h.And == nil || h.And.Direction != DirectionReturn || h.Explains != 3 {
		t.Errorf("want the link p3 -> q4 (three flows) with a return fault: %+v", h)
	}
	if d := Diagnose(build(false)); d.Direction != DirectionReturn {
		t.Errorf("p3's healthy flows reach q4: got %s", describe(d))
	}
}

// The credit is the spread's likelihood ratio: n healthy flows over M-1 of
// M members instead of all M, less the K of M members that could be the
// dead one; nothing where no healthy flow's next hop answered or the
// stage has one member.
func TestLinkCredit(t *testing.T) {
	for _, tc := range []struct {
		ni   nextInfo
		want float64
	}{
		{nextInfo{healthyNext: 24, width: 4, cands: make([]nextCand, 1)}, 24*math.Log(4.0/3) + math.Log(0.25)},
		{nextInfo{healthyNext: 16, width: 19, cands: make([]nextCand, 8)}, 16*math.Log(19.0/18) + math.Log(8.0/19)},
		{nextInfo{healthyNext: 0, width: 4, cands: make([]nextCand, 1)}, 0},
		{nextInfo{healthyNext: 5, width: 1, cands: make([]nextCand, 1)}, 0},
	} {
		c := &candidate{}
		linkCredit(c, &tc.ni, 0)
		if math.Abs(c.credit-tc.want) > 1e-12 {
			t.Errorf("%+v: credit %v, want %v", tc.ni, c.credit, tc.want)
		}
		if w := c.shares.widths[byRouter]; tc.want != 0 && (len(w) != 1 || w[0] != tc.ni.width) {
			t.Errorf("%+v: widths %v, want the stage's", tc.ni, c.shares.widths)
		}
	}
	// Read by link, 2 addresses reached of 10 seen are 2 of 4 routers'
	// links (the others are other routers' links into the same 4): the
	// dead link fails a quarter of the router's flows, not a tenth.
	c := &candidate{}
	linkCredit(c, &nextInfo{healthyNext: 7, width: 10, cands: make([]nextCand, 8)}, 4)
	if r, l := c.shares.widths[byRouter], c.shares.widths[byLink]; !slices.Equal(r, []int{10}) || !slices.Equal(l, []int{4}) {
		t.Errorf("widths %v, want [10] by router and [4] by link", c.shares.widths)
	}
}

// Flows traced by state stand for more of the sweep's (Sample), but each
// counts once in the likelihood: weighing them back sets the shares, not
// how sure the diagnosis is between two places. Counting each as the
// flows it stands for would make a second fault fitted to three traced
// flows count as twelve.
func TestHypothesesWeighBackWithoutMultiplying(t *testing.T) {
	const r1, r2 = "198.18.255.1", "198.18.255.99"
	p := []string{"198.18.255.11", "198.18.255.12", "198.18.255.13", "198.18.255.14"}
	var fs []FlowTrace
	var sport uint16
	for i := range p {
		for k := range 12 {
			sport++
			switch {
			case k%4 == 1: // answers lost on the way back
				fs = append(fs, flowOf(sport, hash.StateFail, r1, p[i], r2, "*", "*"))
			case i == 2 && k%4 == 2: // and three die right after p[2]
				fs = append(fs, flowOf(sport, hash.StateFail, r1, p[i], "*", "*", "*"))
			default:
				fs = append(fs, flowOf(sport, hash.StateOK, r1, p[i], r2, "="))
			}
		}
	}
	lead := func(w float64) float64 {
		d := DiagnoseSample(fs, Sample{Fail: w, OK: w})
		var pair, ret float64
		for _, h := range d.Hypotheses {
			switch {
			case h.And != nil && pair == 0:
				pair = h.Score
			case h.And == nil && h.Kind == HypReturnPath && ret == 0:
				ret = h.Score
			}
		}
		if pair == 0 || ret == 0 {
			t.Fatalf("weight %v: no pair or no return fault alone: %s", w, describe(d))
		}
		return pair - ret
	}
	one, four := lead(1), lead(4)
	if one <= 0 {
		t.Fatalf("bad fixture: the pair does not lead the return fault alone (%.2f)", one)
	}
	if four > 1.5*one {
		t.Errorf("the pair leads by %.2f weighed by 4, by %.2f unweighed: weighing back multiplied the evidence", four, one)
	}
}

// A healthy flow survives both halves of a pair: its way out and its way
// back are hashed apart, so the chances multiply. Shares that add up to
// more than one (a link dead both ways on a narrow fabric) are no
// contradiction.
func TestPairSurvivalMultiplies(t *testing.T) {
	const r1, p1, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.99"
	fs := []FlowTrace{
		flowOf(1, hash.StateOK, r1, p1, r2, "="),
		flowOf(2, hash.StateFail, r1, p1, "*", "*"),
	}
	a := newAnalysis(fs)
	e := a.evidence(Sample{})
	both := []float64{1, 1}
	f := &candidate{h: Hypothesis{Direction: DirectionForward}, exposed: both, cost: map[int]float64{1: 0}}
	r := &candidate{h: Hypothesis{Direction: DirectionReturn}, exposed: both, cost: map[int]float64{1: 0}}
	fit := e.pairLoglik(f, r, 0.6, 0.5)
	want := math.Log(0.6) + math.Log(0.4*0.5)
	if math.Abs(fit.ll-want) > 1e-9 || fit.kf != 1 || fit.kr != 0 || fit.f.w != 1 {
		t.Errorf("pair loglik %.4f (kf %d kr %d wf %.1f), want %.4f: the failing flow by the forward half, the healthy one surviving both", fit.ll, fit.kf, fit.kr, fit.f.w, want)
	}
}

// A share is weighed flow by flow, as its exposure is: a second look
// traces a stratum whole, each of its flows standing for itself, where the
// first pass's stand for several. Two of the four flows exposed fail.
func TestShareWeighsEachFlow(t *testing.T) {
	const r1, p1, p2, r2 = "198.18.255.1", "198.18.255.11", "198.18.255.12", "198.18.255.99"
	fs := []FlowTrace{
		flowOf(1, hash.StateFail, r1, p1, "*", "*"),
		flowOf(2, hash.StateFail, r1, p1, "*", "*"),
		flowOf(3, hash.StateOK, r1, p1, r2, "="),
		flowOf(4, hash.StateOK, r1, p1, r2, "="),
		flowOf(5, hash.StateFail, r1, p2, "*", "*"),
		flowOf(6, hash.StateOK, r1, p2, r2, "="),
	}
	looked := map[uint16]float64{1: 1, 2: 1, 3: 1, 4: 1}
	a := newAnalysis(fs)
	e := a.evidence(Sample{Fail: 4, OK: 4, Weight: looked})
	c := &candidate{h: Hypothesis{Direction: DirectionForward}, exposed: []float64{1, 1, 1, 1, 0, 0},
		cost: map[int]float64{0: 0, 1: 0}}
	e.score(c)
	if math.Abs(c.h.Share-0.5) > 1e-9 || c.h.Explains != 2 {
		t.Errorf("share %.3f explaining %d, want 0.5 explaining 2", c.h.Share, c.h.Explains)
	}
}

// A forward fault right after a router, read as a link dead both ways,
// takes the share of one link into the stage it leads into: without
// widths of its own, that stage's.
func TestAsLinkTakesTheNextStagesWidth(t *testing.T) {
	l := newLab(3, 4, false)
	a := newAnalysis(l.flows(96, nil))
	next := &candidate{h: Hypothesis{Direction: DirectionForward, Kind: HypNextHop, TTL: 3}}
	got := a.asLink(next).shares.widths
	// Four q behind three p read by link are two routers of three links
	// each, one link's address unseen (readings.go).
	if !slices.Equal(got[byRouter], []int{4}) || !slices.Equal(got[byLink], []int{a.reading(alter{}).width(3, byLink)}) {
		t.Errorf("widths %v, want the q stage's: 4 routers, or as read by link", got)
	}
	if next.shares.any() {
		t.Error("asLink changed its argument")
	}
	link := &candidate{h: Hypothesis{Direction: DirectionForward, Kind: HypLink, TTL: 3}}
	link.shares.widths[byRouter] = []int{2}
	if got := a.asLink(link).shares.widths; !slices.Equal(got[byRouter], []int{2}) || got[byLink] != nil {
		t.Errorf("a link's own widths %v replaced", got)
	}
}
