package core

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/report"
)

// The core's tests run whole jobs against the fake fabric inside a
// synctest bubble: the real engine, real matching and real verdicts, with
// virtual time.

func runSweep(t *testing.T, f *fabric, cfg SweepConfig) report.Sweep {
	t.Helper()
	sw, err := Sweep(context.Background(), cfg, testEnv(f))
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	return sw
}

func failingOf(sw report.Sweep) map[uint16]bool {
	out := map[uint16]bool{}
	for _, p := range sw.Ports {
		if p.State == hash.StateFail {
			out[p.Tuple.SrcPort] = true
		}
	}
	return out
}

func sameSet(a, b map[uint16]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func TestSweepFindsTheBadMember(t *testing.T) {
	for _, fault := range []string{"blackhole-fwd", "blackhole-ret", "drop-synack"} {
		t.Run(fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 2, fault)
				ports := portRange(30000, 64)
				sw := runSweep(t, f, sweepConfig(ports, 3))
				want := f.failing(ports)
				if got := failingOf(sw); !sameSet(got, want) || len(want) == 0 {
					t.Errorf("failing ports %v, want %v", report.PortRanges(sw.Summary.FailingPorts), want)
				}
				if sw.Summary.Kind != report.KindECMPFault || sw.Summary.ExitCode() != 1 || sw.ICMP.State() != "ok" || sw.Mode != "raw" {
					t.Errorf("kind %s exit %d icmp %s mode %s; want ecmp-fault, 1, ok, raw", sw.Summary.Kind, sw.Summary.ExitCode(), sw.ICMP.State(), sw.Mode)
				}
				if fault == "drop-synack" && sw.HalfOpen == 0 {
					t.Error("no half-open ACK counted on a drop-synack fabric")
				}
			})
		})
	}
}

func TestSweepHealthyAndStrict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 0, "")
		f.bogus = true // every SYN-ACK is followed by one that acknowledges no probe
		sw := runSweep(t, f, sweepConfig(portRange(30000, 32), 2))
		if sw.Summary.Kind != report.KindHealthy || sw.Summary.OK != 32 {
			t.Errorf("kind %s, %d ok; want healthy, 32", sw.Summary.Kind, sw.Summary.OK)
		}
		if sw.Unmatched < 64 || sw.Summary.DuplicateReps != 0 {
			t.Errorf("unmatched %d duplicates %d; want every bogus SYN-ACK unmatched, none a duplicate", sw.Unmatched, sw.Summary.DuplicateReps)
		}
	})
}

// A local firewall that drops every probe on the way out is not a healthy
// network: nothing was measured.
func TestSweepFirewallIsCannotProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 1, "blackhole-fwd")
		f.sendErr = func(probe.Probe) error { return errEPERM }
		sw := runSweep(t, f, sweepConfig(portRange(30000, 16), 3))
		s := sw.Summary
		if s.Kind != report.KindCannotProbe || s.ExitCode() != 3 || s.Error != 16 || sw.ICMP.State() != "error" {
			t.Errorf("kind %s exit %d error %d icmp %s; want cannot-probe, 3, 16, error", s.Kind, s.ExitCode(), s.Error, sw.ICMP.State())
		}
		if !strings.Contains(s.Verdict, "firewall") || len(sw.SendFailures) != 1 || sw.SendFailures[0].Cause != "firewall" {
			t.Errorf("verdict %q, failures %+v; want the firewall named", s.Verdict, sw.SendFailures)
		}
		if f.sent != 0 {
			t.Errorf("%d probes reached the fabric", f.sent)
		}
	})
}

// Some ports blocked: they are error, the rest is judged without them.
func TestSweepPartialSendFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 3, "blackhole-fwd")
		ports := portRange(30000, 64)
		blocked := map[uint16]bool{30000: true, 30001: true, 30002: true}
		f.sendErr = func(p probe.Probe) error {
			if p.Kind != probe.KindICMPEcho && blocked[p.Tuple.SrcPort] {
				return errEPERM
			}
			return nil
		}
		sw := runSweep(t, f, sweepConfig(ports, 3))
		want := f.failing(ports)
		for sp := range blocked {
			delete(want, sp)
		}
		if got := failingOf(sw); !sameSet(got, want) {
			t.Errorf("failing %v, want %v", got, want)
		}
		s := sw.Summary
		if s.Error != 3 || s.Kind != report.KindECMPFault || !strings.Contains(s.Verdict, "3 of 64 source ports could not be probed") {
			t.Errorf("error %d kind %s verdict %q; want 3 error ports named in an ecmp-fault verdict", s.Error, s.Kind, s.Verdict)
		}
	})
}

// In connect mode a port the host cannot bind is error, not path loss.
func TestConnectModePortInUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 0, "")
		f.raw = false
		f.sendErr = func(p probe.Probe) error {
			if p.Tuple.SrcPort == 30005 && p.Kind == probe.KindConnect {
				return &syscallError{syscall.EADDRINUSE}
			}
			return nil
		}
		var notices []string
		env := testEnv(f)
		env.Notice = func(s string) { notices = append(notices, s) }
		sw, err := Sweep(context.Background(), sweepConfig(portRange(30000, 16), 2), env)
		if err != nil {
			t.Fatal(err)
		}
		if sw.Mode != "connect" || len(notices) != 1 || !strings.Contains(notices[0], "connect mode") {
			t.Errorf("mode %s, notices %q; want connect mode, said once", sw.Mode, notices)
		}
		s := sw.Summary
		if s.Error != 1 || s.ErrorPorts[0] != 30005 || s.Kind != report.KindHealthy || sw.SendFailures[0].Cause != "port-in-use" {
			t.Errorf("error ports %v kind %s failures %+v; want 30005 as error (port in use), healthy otherwise", s.ErrorPorts, s.Kind, sw.SendFailures)
		}
	})
}

type syscallError struct{ errno syscall.Errno }

func (e *syscallError) Error() string { return "bind: " + e.errno.Error() }
func (e *syscallError) Unwrap() error { return e.errno }

func TestRawModeWithoutPrivilege(t *testing.T) {
	f := newFabric(4, 0, "")
	f.raw = false
	cfg := sweepConfig(portRange(30000, 4), 1)
	cfg.Mode = ModeRaw
	_, err := Sweep(context.Background(), cfg, testEnv(f))
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != CannotProbe || !errors.Is(err, probe.ErrPermission) || f.sent != 0 {
		t.Errorf("err = %v, %d sent; want CannotProbe wrapping ErrPermission before any probe", err, f.sent)
	}
}

func TestSweepInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 1, "blackhole-fwd")
		ctx, cancel := context.WithCancel(context.Background())
		env := testEnv(f)
		env.Progress = func(p probe.Progress) {
			if p.Sent >= 100 {
				cancel()
			}
		}
		cfg := sweepConfig(portRange(30000, 256), 3)
		cfg.Rate = 500
		sw, err := Sweep(ctx, cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, p := range sw.Ports {
			total += p.Sent
		}
		if !sw.Interrupted || total == 0 || total >= 256*3 {
			t.Errorf("interrupted %v with %d TCP probes sent; want a partial run", sw.Interrupted, total)
		}
	})
}

func TestPlannedSweepSettles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(8, 5, "blackhole-fwd")
		f.loss = 0.05
		plan, err := hash.MakePlan(0.99, 16, 0, hash.DefaultAlpha, hash.DefaultMaxRepeats)
		if err != nil {
			t.Fatal(err)
		}
		ports := portRange(30000, plan.Ports)
		cfg := sweepConfig(ports, 1)
		cfg.Plan = &plan
		sw := runSweep(t, f, cfg)
		if sw.Plan == nil || sw.Plan.Rounds < 2 || !strings.HasPrefix(sw.Plan.Stopped, "settled") {
			t.Fatalf("plan %+v; want it settled after a few rounds", sw.Plan)
		}
		if got, want := failingOf(sw), f.failing(ports); !sameSet(got, want) {
			t.Errorf("failing %v, want %v", got, want)
		}
	})
}

func TestPlannedSweepStopsWhenNothingLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(4, 0, "")
		f.sendErr = func(probe.Probe) error { return errEPERM }
		plan, _ := hash.MakePlan(0.9, 4, 0, hash.DefaultAlpha, hash.DefaultMaxRepeats)
		cfg := sweepConfig(portRange(30000, plan.Ports), 1)
		cfg.Plan = &plan
		sw := runSweep(t, f, cfg)
		if sw.Plan.Rounds != 1 || !strings.Contains(sw.Plan.Stopped, "no probe") || sw.Summary.Kind != report.KindCannotProbe {
			t.Errorf("plan %+v kind %s; want one round, stopped, cannot-probe", sw.Plan, sw.Summary.Kind)
		}
	})
}

func TestSweepThenTrace(t *testing.T) {
	cases := []struct {
		fault string
		want  report.Direction
	}{{"blackhole-fwd", report.DirectionForward}, {"blackhole-ret", report.DirectionReturn}, {"", report.DirectionNone}}
	for _, c := range cases {
		t.Run(c.fault, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFabric(4, 1, c.fault)
				cfg := sweepConfig(portRange(30000, 32), 3)
				cfg.Trace = &TraceOptions{MaxTTL: 8, HopProbes: 2}
				sw := runSweep(t, f, cfg)
				tr := sw.Trace
				if tr == nil {
					t.Fatal("no trace")
				}
				if tr.Diagnosis.Direction != c.want {
					t.Errorf("direction %s, want %s: %s", tr.Diagnosis.Direction, c.want, tr.Diagnosis.Text)
				}
				if tr.Started.IsZero() {
					t.Error("the trace of a sweep has no start time")
				}
				if tr.MaxTTL != 4 {
					t.Errorf("max TTL %d; want 4, one past the target's distance of 3", tr.MaxTTL)
				}
				if c.fault == "blackhole-fwd" && (len(tr.Diagnosis.Suspects) == 0 || tr.Diagnosis.Suspects[0].Addr != r1) {
					t.Errorf("suspects %+v; want the flows to die after %s", tr.Diagnosis.Suspects, r1)
				}
				// The trace's flows carry the sweep's verdicts: one rule.
				for _, fl := range tr.Flows {
					for _, p := range sw.Ports {
						if p.Tuple.SrcPort == fl.Sport && p.State != fl.State {
							t.Errorf("port %d: sweep says %s, trace says %s", fl.Sport, p.State, fl.State)
						}
					}
				}
			})
		})
	}
}

func TestTraceJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(2, 0, "blackhole-fwd")
		cfg := traceConfig(16)
		tr, err := Trace(context.Background(), cfg, testEnv(f))
		if err != nil {
			t.Fatal(err)
		}
		fails := 0
		for _, fl := range tr.Flows {
			if fl.State == hash.StateFail {
				fails++
			}
		}
		if want := len(f.failing(cfg.Ports)); fails != want || tr.Diagnosis.Direction != report.DirectionForward || tr.ExitCode() != 1 {
			t.Errorf("%d failing flows (want %d), direction %s, exit %d", fails, want, tr.Diagnosis.Direction, tr.ExitCode())
		}
		if tr.Retried != nil {
			t.Errorf("routers that answer every probe taken for rate-limited: %+v", *tr.Retried)
		}
		f.raw = false
		if _, err := Trace(context.Background(), cfg, testEnv(f)); !errors.Is(err, probe.ErrPermission) {
			t.Errorf("trace without raw sockets: %v, want ErrPermission", err)
		}
	})
}

// TestTraceRetriesRateLimitedHops: routers that answer 6 errors, then one
// a second, leave most hops of a fast trace silent; the trace finds the
// TTLs, probes their silent hops again a round a second, and the failing
// flows' hops get answered.
func TestTraceRetriesRateLimitedHops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := traceConfig(48)
		answered := func(tr report.Trace) (n int) {
			for _, fl := range tr.Flows {
				for _, h := range fl.Hops {
					if fl.State == hash.StateFail && h.Answers > 0 {
						n++
					}
				}
			}
			return n
		}
		f := newFabric(4, 1, "blackhole-fwd")
		f.rateLimited = true
		once, err := Trace(context.Background(), cfg, testEnv(f))
		if err != nil {
			t.Fatal(err)
		}
		if once.Retried == nil || once.Retried.Rounds != 0 || !slices.Contains(once.Retried.TTLs, 1) {
			t.Fatalf("without patience: retried %+v, want TTL 1 found and no round", once.Retried)
		}
		cfg.Patience = 20 * time.Second
		f = newFabric(4, 1, "blackhole-fwd")
		f.rateLimited = true
		tr, err := Trace(context.Background(), cfg, testEnv(f))
		if err != nil {
			t.Fatal(err)
		}
		r := tr.Retried
		if r == nil || r.Rounds == 0 || r.Answers == 0 || r.Rounds > 20 {
			t.Fatalf("retried %+v, want rounds within the patience that got answers", r)
		}
		if a, b := answered(once), answered(tr); b <= a {
			t.Errorf("failing flows' hops answered: %d once, %d with retries", a, b)
		}
		if tr.Diagnosis.Direction != report.DirectionForward {
			t.Errorf("direction %s, want forward: %s", tr.Diagnosis.Direction, tr.Diagnosis.Text)
		}
	})
}

// A trace asks the routing table for the flows' gateway and keeps it only
// when every answer agrees: with a multipath route on the host, which
// gateway a silent first hop is cannot be told.
func TestTraceFirstHop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFabric(2, 0, "blackhole-fwd")
		cfg := traceConfig(16)
		gw := netip.MustParseAddr("198.19.0.1")
		for _, c := range []struct {
			name  string
			other netip.Addr // the gateway of a third of the source ports
			want  netip.Addr
		}{
			{"one gateway", gw, gw},
			{"multipath", netip.MustParseAddr("198.19.0.5"), netip.Addr{}},
			{"on-link", netip.Addr{}, netip.Addr{}},
		} {
			env := testEnv(f)
			var asked []route.Query
			env.FirstHop = func(_ context.Context, q route.Query) (route.Route, error) {
				asked = append(asked, q)
				if q.Sport%3 == 1 {
					return route.Route{Gateway: c.other}, nil
				}
				return route.Route{Gateway: gw}, nil
			}
			tr, err := Trace(context.Background(), cfg, env)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Gateway != c.want {
				t.Errorf("%s: gateway %v, want %v", c.name, tr.Gateway, c.want)
			}
			if len(asked) == 0 || len(asked) > route.Lookups || asked[0].Dport != 3306 || asked[0].Proto != hash.ProtoTCP || !asked[0].Dst.IsValid() {
				t.Errorf("%s: lookups %+v", c.name, asked)
			}
		}
	})
}

// traceConfig traces n flows from port 30000 to vip:3306, two probes per
// hop.
func traceConfig(n int) TraceConfig {
	return TraceConfig{
		Target:       Target{Host: "vip", Port: 3306},
		Probing:      Probing{Ports: portRange(30000, n), Count: 2, Rate: 1000, Timeout: 1e9},
		TraceOptions: TraceOptions{MaxTTL: 16, HopProbes: 2},
	}
}
