package core

import (
	"context"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
)

// listenLonger takes the first pass's retries up again where the patience
// ran out with holes left, for one more patience, numbering on; without
// patience there is nothing to take up.
func TestListenLonger(t *testing.T) {
	for _, patience := range []time.Duration{0, 3 * time.Second} {
		synctest.Test(t, func(t *testing.T) {
			f := newFabric(4, 1, "blackhole-fwd")
			f.rateLimited = true
			cfg := traceConfig(48)
			cfg.Patience = patience
			tr, c, e2e := firstPass(t, f, cfg)
			first, _, err := tr.retry(c, e2e)
			if err != nil || first == nil {
				t.Fatalf("retry: %+v, %v; want rate-limited TTLs", first, err)
			}
			rounds, probes := first.Rounds, first.Probes
			sent := f.sent
			more, stopped, err := tr.listenLonger(c)
			switch {
			case err != nil || stopped:
				t.Fatalf("listenLonger: stopped %v, %v", stopped, err)
			case patience == 0 && (more || f.sent != sent):
				t.Fatalf("without patience it probed again (%d probes)", f.sent-sent)
			case patience == 0:
				return
			case !more || !first.Longer:
				t.Fatalf("holes left after %d rounds, yet no more: %+v", rounds, first)
			}
			if n := first.Rounds - rounds; n < 1 || n > int(patience/time.Second)+1 || first.Probes <= probes || f.sent-sent != first.Probes-probes {
				t.Errorf("listened %d rounds more, %d probes (%d sent), within a patience of %v", n, first.Probes-probes, f.sent-sent, patience)
			}
		})
	}
}

// firstPass is a trace up to its retries, as Trace runs it: every flow end
// to end, then every TTL of each.
func firstPass(t *testing.T, f *fabric, cfg TraceConfig) (*tracer, *collector, []hash.Judged) {
	t.Helper()
	env := testEnv(f)
	dst := netip.AddrPortFrom(server, cfg.Port)
	raw, err := env.Probers.Raw(client, dst, true)
	if err != nil {
		t.Fatal(err)
	}
	set := single(raw)
	t.Cleanup(set.close)
	tr := &tracer{ctx: context.Background(), cfg: cfg, env: env, set: set, rng: env.rng()}
	c := newCollector()
	tuples := probe.Tuples(client, dst, cfg.Ports)
	if _, err := tr.send(c, probe.NewRounds(tuples, probe.KindTCPSYN, nil, cfg.Count, tr.rng)); err != nil {
		t.Fatal(err)
	}
	e2e, _ := hash.Judge(c.tcp.Buckets(), hash.DefaultAlpha)
	if _, err := tr.send(c, probe.NewTraceRounds(tuples, 4, cfg.HopProbes, tr.rng)); err != nil {
		t.Fatal(err)
	}
	return tr, c, e2e
}
