package core

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/report"
)

// fakeResponder is the server side of the fake fabric: it reports the SYNs
// the fabric delivered to the server.
type fakeResponder struct {
	f          *fabric
	reg        *responder.Register
	refuse     error // Register answers this
	unreach    bool  // no call gets through
	registered int   // probes the fabric had seen at registration
	reverse    *responder.ReverseRequest
	// silentFirst: the first return hop, r2, answers no reverse probe.
	silentFirst bool
}

func (r *fakeResponder) Register(_ context.Context, reg responder.Register) (responder.Registered, error) {
	if r.unreach {
		return responder.Registered{}, errors.New("6 attempts failed: connection timed out")
	}
	if r.refuse != nil {
		return responder.Registered{}, r.refuse
	}
	r.reg = &reg
	r.f.mu.Lock()
	r.registered = r.f.sent
	r.f.mu.Unlock()
	return responder.Registered{Run: reg.Run}, nil
}

func (r *fakeResponder) Report(_ context.Context, run string) (responder.Report, error) {
	if r.unreach || r.reg == nil || run != r.reg.Run {
		return responder.Report{}, errors.New("no such run")
	}
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	var out responder.Report
	for sp, n := range r.f.arrived {
		a := responder.Arrival{Sport: sp, Count: n, TTL: 62}
		for _, seq := range r.f.seqs[sp] {
			if len(a.Probes) < responder.MaxProbesPerPort {
				a.Probes = append(a.Probes, responder.ProbeArrival{Seq: seq, TTL: 62})
			}
		}
		out.Arrivals = append(out.Arrivals, a)
	}
	if r.reverse != nil {
		out.Return = &responder.ReturnTraces{State: responder.ReverseDone, Gateway: r2.String()}
		for _, sp := range r.reverse.Sports {
			hops := r.f.returnHops(sp, r.reverse.MaxTTL)
			if r.silentFirst && len(hops) > 0 {
				hops[0].Addr, hops[0].Answers = "", 0
			}
			out.Return.Flows = append(out.Return.Flows, responder.ReturnFlow{Sport: sp, Hops: hops})
		}
	}
	return out, nil
}

func (r *fakeResponder) Reverse(_ context.Context, req responder.ReverseRequest) (responder.ReverseStarted, error) {
	if r.unreach || r.reg == nil || req.Run != r.reg.Run {
		return responder.ReverseStarted{}, errors.New("no such run")
	}
	r.reverse = &req
	return responder.ReverseStarted{Run: req.Run, Probes: len(req.Sports) * req.MaxTTL * req.PerHop, Rate: 500}, nil
}

// server-side router of the fake fabric's return paths.
var r2 = netip.MustParseAddr("198.18.255.2")

// returnHops is a flow's return path as a responder traces it: r2, the
// flow's member, r1, the client. A blackholed member is silent and passes
// nothing; a SYN-ACK dropper answers and passes nothing.
func (f *fabric) returnHops(sport uint16, maxTTL int) []responder.ReturnHop {
	onBad := f.fault != "" && f.memberOf(hash.FiveTuple{SrcPort: sport}) == f.bad
	path := []netip.Addr{r2, member(f.memberOf(hash.FiveTuple{SrcPort: sport})), r1, client}
	var out []responder.ReturnHop
	for ttl := 1; ttl <= maxTTL; ttl++ {
		h := responder.ReturnHop{TTL: ttl, Probes: 2}
		dead := onBad && (ttl > 2 || (ttl == 2 && f.fault == "blackhole-ret"))
		if !dead && ttl <= len(path) {
			h.Addr, h.Answers, h.Reached = path[ttl-1].String(), 2, ttl == len(path)
		}
		out = append(out, h)
		if h.Reached {
			break
		}
	}
	return out
}

func (r *fakeResponder) Name() string { return "198.18.2.2:7000" }
func (r *fakeResponder) Retried() int { return 0 }

func TestSweepTwoEnded(t *testing.T) {
	for fault, want := range map[string]string{"blackhole-fwd": report.TwoEndedForward, "blackhole-ret": report.TwoEndedReturn,
		"drop-synack": report.TwoEndedReturn, "": report.TwoEndedNone} {
		t.Run(fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 2, fault)
				r := &fakeResponder{f: f}
				env := testEnv(f)
				env.Responder = r
				ports := portRange(30000, 64)
				sw, err := Sweep(context.Background(), sweepConfig(ports, 3), env)
				if err != nil {
					t.Fatal(err)
				}
				if r.reg == nil || r.registered != 0 || r.reg.Client != client.String() || r.reg.Target != "198.18.2.2:3306" {
					t.Fatalf("registration %+v after %d probes", r.reg, r.registered)
				}
				if n := len(r.reg.Sports); n != 1 || r.reg.Sports[0] != (responder.PortRange{First: 30000, Last: 30063}) {
					t.Errorf("registered ports %v", r.reg.Sports)
				}
				d := sw.Summary.Direction
				if d == nil || d.Kind != want || d.Forward+d.Return != sw.Summary.Fail {
					t.Fatalf("direction %+v, want %s (%d failing)", d, want, sw.Summary.Fail)
				}
				for _, sp := range d.ReturnPorts {
					if f.arrived[sp] == 0 {
						t.Errorf("port %d called return, but its SYNs never arrived", sp)
					}
				}
			})
		})
	}
}

// A responder that refuses stops the sweep before any probe; one that
// cannot be reached leaves a one-ended sweep that says so.
func TestSweepTwoEndedRefusedOrUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 2, "blackhole-ret")
		env := testEnv(f)
		env.Responder = &fakeResponder{f: f, refuse: &responder.Refusal{Reason: "out of scope: target 198.18.2.2 is not an address of this host"}}
		_, err := Sweep(context.Background(), sweepConfig(portRange(30000, 8), 2), env)
		var ce *Error
		if !errors.As(err, &ce) || ce.Kind != CannotProbe || f.sent != 0 {
			t.Errorf("refused: err %v, %d probes sent", err, f.sent)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 2, "blackhole-ret")
		env := testEnv(f)
		var notes []string
		env.Notice = func(s string) { notes = append(notes, s) }
		env.Responder = &fakeResponder{f: f, unreach: true}
		sw, err := Sweep(context.Background(), sweepConfig(portRange(30000, 32), 2), env)
		if err != nil {
			t.Fatal(err)
		}
		if sw.TwoEnded == nil || sw.TwoEnded.Err == "" || sw.Summary.Direction.Kind != report.TwoEndedUnknown ||
			!strings.Contains(sw.Summary.Verdict, "could not be asked") || len(notes) == 0 {
			t.Errorf("unreachable: %+v, verdict %q, notes %q", sw.TwoEnded, sw.Summary.Verdict, notes)
		}
	})
}

// sweep --trace --responder: the trace's diagnosis takes what arrived, and
// the trace's own SYNs are not counted as the sweep's.
func TestSweepThenTraceTwoEnded(t *testing.T) {
	for fault, want := range map[string]report.Direction{"blackhole-fwd": report.DirectionForward, "blackhole-ret": report.DirectionReturn} {
		t.Run(fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 1, fault)
				env := testEnv(f)
				env.Responder = &fakeResponder{f: f}
				cfg := sweepConfig(portRange(30000, 32), 3)
				cfg.Trace = &TraceOptions{MaxTTL: 8, HopProbes: 2}
				sw, err := Sweep(context.Background(), cfg, env)
				if err != nil {
					t.Fatal(err)
				}
				if sw.Trace == nil || sw.Trace.Diagnosis.Direction != want || !strings.Contains(sw.Trace.Diagnosis.Text, "two-ended") {
					t.Fatalf("trace %+v", sw.Trace)
				}
				for sp, n := range sw.TwoEnded.Arrived {
					if n > 3 {
						t.Errorf("port %d: %d arrivals for 3 probes: the trace's SYNs were counted", sp, n)
					}
				}
			})
		})
	}
}

// trace --responder on a return fault: the responder traces the failing
// flows back (and healthy ones), and the return-path diagnosis names the
// bad member as the first suspect.
func TestTraceBackTwoEnded(t *testing.T) {
	for _, name := range []string{"blackhole-ret", "drop-synack", "blackhole-fwd", "blackhole-ret silent-r2"} {
		fault, silentFirst := strings.CutSuffix(name, " silent-r2")
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 1, fault)
				env := testEnv(f)
				r := &fakeResponder{f: f, silentFirst: silentFirst}
				env.Responder = r
				ports := portRange(30000, 48)
				tr, err := Trace(context.Background(), TraceConfig{Target: sweepConfig(ports, 2).Target,
					Probing: sweepConfig(ports, 2).Probing, TraceOptions: TraceOptions{MaxTTL: 8, HopProbes: 2}}, env)
				if err != nil {
					t.Fatal(err)
				}
				d := tr.Diagnosis
				if fault == "blackhole-fwd" {
					if r.reverse != nil || d.Return != nil {
						t.Errorf("a forward fault was traced back: %+v", r.reverse)
					}
					return
				}
				if r.reverse == nil {
					t.Fatal("no reverse trace asked for")
				}
				failing := f.failing(ports)
				for _, sp := range r.reverse.Sports {
					if !slices.Contains(ports, sp) {
						t.Errorf("traced back port %d, not one of the run's", sp)
					}
				}
				if d.Return == nil || d.Return.Failing != len(failing) || d.Direction != report.DirectionReturn || len(d.Suspects) == 0 {
					t.Fatalf("diagnosis %s, return paths %+v: %s", d.Direction, d.Return, d.Text)
				}
				s := d.Suspects[0]
				bad := member(f.bad)
				// The bad member itself, or when it never answers, the
				// router before it (or the member behind it).
				// Behind a first hop that answers nothing, the responder's
				// gateway names it.
				ok := s.Direction == report.DirectionReturn && (s.Addr == bad || s.Addr == r2 || (s.Kind == "member" && slices.Contains(s.Behind, r2)))
				if silentFirst {
					ok = s.Direction == report.DirectionReturn && s.FirstHop == r2 && strings.Contains(d.Text, "the target's gateway "+r2.String())
				}
				if !ok {
					t.Errorf("suspects[0] = %s %s %s -> %s behind %v first hop %v; want the bad member %s on the way back: %s", s.Direction, s.Kind, s.Addr, s.Next, s.Behind, s.FirstHop, bad, d.Text)
				}
				if tr.TwoEnded == nil || tr.TwoEnded.Gateway != r2 {
					t.Errorf("the responder's gateway is not in the trace: %+v", tr.TwoEnded)
				}
				if !strings.Contains(d.Text, "traced back from the responder") {
					t.Errorf("text does not say how it knows: %s", d.Text)
				}
			})
		})
	}
}

// SYNs on the run's tuples that are none of its probes (another run's, from
// the same client) are not taken for its own: a port whose only arrivals
// are foreign did not get through.
func TestTwoEndedCountsOwnProbesOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 1, "blackhole-fwd")
		env := testEnv(f)
		env.Responder = &fakeResponder{f: f}
		ports := portRange(30000, 32)
		failing := f.failing(ports)
		var victim uint16
		for sp := range failing {
			victim = sp
			break
		}
		// Another run's SYNs arrived on a failing port (and a healthy one).
		f.mu.Lock()
		f.arrived, f.seqs = map[uint16]int{victim: 2, 30001: 1}, map[uint16][]uint32{victim: {12345, 67890}, 30001: {4242}}
		f.mu.Unlock()
		sw, err := Sweep(context.Background(), sweepConfig(ports, 3), env)
		if err != nil {
			t.Fatal(err)
		}
		two := sw.TwoEnded
		if two == nil || !two.ByProbe || two.Foreign < 2 || two.Arrived[victim] != 0 {
			t.Fatalf("two-ended %+v: want the foreign SYNs on %d not counted", two, victim)
		}
		if d := sw.Summary.Direction; d == nil || d.Kind != report.TwoEndedForward || d.Return != 0 {
			t.Errorf("direction %+v, want forward for every failing port", d)
		}
		if n := two.Arrived[30001]; !failing[30001] && n != 3 {
			t.Errorf("healthy port 30001: %d of its own 3 SYNs counted", n)
		}
	})
}
