package core

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/probe/packet"
	"github.com/ecmpscan/ecmpscan/report"
)

// stampingRouters answer the alias test's echo requests as routers that
// honour the prespecified timestamp option do: the router holding the
// address asked stamps it, and the other address too when it holds that
// one. Routers in ignore answer without stamping; addresses in lost
// never answer.
type stampingRouters struct {
	*fabric                       // its reply queue
	owner   map[netip.Addr]string // address -> router
	ignore  map[string]bool
	lost    map[netip.Addr]bool
	pairs   []probe.AliasPair
}

var _ Prober = (*stampingRouters)(nil)

func (s *stampingRouters) Send(p probe.Probe) (time.Time, error) {
	pair := s.pairs[p.Tuple.SrcPort]
	now := time.Now()
	if s.lost[pair.Addr] {
		return now, nil
	}
	rep := packet.Reply{Kind: packet.KindEchoReply, From: p.Tuple.Dst, To: p.Tuple.Src,
		EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie), TTL: 62}
	if r := s.owner[pair.Addr]; !s.ignore[r] {
		rep.Stamped = []netip.Addr{pair.Addr}
		if s.owner[pair.Ask] == r {
			rep.Stamped = append(rep.Stamped, pair.Ask)
		}
	}
	s.deliver(rep)
	return now, nil
}

// aliasNet is the fake fabric with stamping routers behind Alias.
type aliasNet struct {
	*fabric
	routers *stampingRouters
}

func (n aliasNet) Alias(_ netip.Addr, pairs []probe.AliasPair) (Prober, error) {
	n.routers.pairs = pairs
	return n.routers, nil
}

// The alias test asks every pair of the addresses that answered at one
// TTL, and groups those one router stamped together: not those of a
// router that ignores the option. An address whose own answers are lost
// is still found through the others'.
func TestAliasTestGroupsWhatRoutersStamp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
		r2a, r2b, r2c := a("198.19.201.2"), a("198.19.203.2"), a("198.19.204.2")
		p1, p2, q1, q2 := a("198.19.1.2"), a("198.19.2.2"), a("198.19.101.2"), a("198.19.102.2")
		routers := &stampingRouters{
			fabric: newFabric(4, 0, ""),
			owner:  map[netip.Addr]string{r2a: "r2", r2b: "r2", r2c: "r2", p1: "p1", p2: "p2", q1: "q", q2: "q"},
			ignore: map[string]bool{"q": true},
			lost:   map[netip.Addr]bool{r2c: true},
		}
		var flows []report.FlowTrace
		for i, hops := range [][]netip.Addr{{p1, q1, r2a}, {p2, q2, r2b}, {p1, q2, r2c}} {
			f := report.FlowTrace{Sport: uint16(30000 + i), State: hash.StateOK}
			for ttl, h := range hops {
				f.Hops = append(f.Hops, report.TraceHop{TTL: ttl + 1, Addr: h, Probes: 2, Answers: 2})
			}
			flows = append(flows, f)
		}
		env := testEnv(newFabric(4, 0, ""))
		env.Probers = aliasNet{fabric: newFabric(4, 0, ""), routers: routers}
		tr := &tracer{ctx: t.Context(), cfg: traceConfig(3), env: env, rng: env.rng()}
		got, interrupted, err := tr.aliasTest(report.Trace{Source: client, Target: netip.AddrPortFrom(server, 3306), Flows: flows})
		if err != nil || interrupted {
			t.Fatalf("alias test: %v, interrupted %v", err, interrupted)
		}
		// 2 + 2 + 6 ordered pairs; r2c's 2 never answered; q's 2 unstamped.
		want := &report.AliasTest{Asked: 10, Answered: 8, Honoured: 6, Groups: [][]netip.Addr{{r2a, r2b, r2c}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
		asked := map[[2]netip.Addr]int{}
		for _, p := range routers.pairs {
			asked[[2]netip.Addr{p.Addr, p.Ask}]++
		}
		if n := asked[[2]netip.Addr{r2a, r2b}] + asked[[2]netip.Addr{r2b, r2a}]; n != 2 || slices.ContainsFunc(routers.pairs, func(p probe.AliasPair) bool { return p.Addr == server }) {
			t.Errorf("pairs asked %v: want each ordered pair once, never the target", routers.pairs)
		}
	})
}

// IPv6 has no timestamp option: no test runs, and no socket is opened.
func TestAliasTestNotForIPv6(t *testing.T) {
	env := testEnv(newFabric(4, 0, ""))
	tr := &tracer{ctx: t.Context(), cfg: traceConfig(3), env: env, rng: env.rng()}
	flows := []report.FlowTrace{
		{Sport: 1, Hops: []report.TraceHop{{TTL: 1, Addr: netip.MustParseAddr("2001:db8:ff00:1::2"), Answers: 1}}},
		{Sport: 2, Hops: []report.TraceHop{{TTL: 1, Addr: netip.MustParseAddr("2001:db8:ff00:2::2"), Answers: 1}}},
	}
	got, _, err := tr.aliasTest(report.Trace{Source: netip.MustParseAddr("2001:db8:1::1"),
		Target: netip.MustParseAddrPort("[2001:db8:2::2]:3306"), Flows: flows})
	if got != nil || err != nil {
		t.Errorf("IPv6: %+v, %v; want no test", got, err)
	}
}
