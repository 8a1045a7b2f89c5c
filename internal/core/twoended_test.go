package core

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"

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
		out.Arrivals = append(out.Arrivals, responder.Arrival{Sport: sp, Count: n, TTL: 62})
	}
	return out, nil
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
