package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/hash"
)

// needNetns skips tests that create network namespaces where they cannot.
func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping network namespace integration test")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (iproute2 / nftables) on PATH: %v", tool, err)
		}
	}
}

// upForTest brings a fabric up, serves its ports in the server namespace,
// and removes everything when the test ends, and checks that it did.
func upForTest(t *testing.T, spec Spec) *Fabric {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	f, err := Up(ctx, spec)
	if err != nil {
		t.Fatalf("Up(%+v): %v", spec, err)
	}
	t.Logf("Up %dx%d took %v", spec.Width, spec.Width2, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := f.Down(ctx); err != nil {
			t.Errorf("Down: %v", err)
		}
		nss, err := netnsNames(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range nss {
			if strings.HasPrefix(ns, "esl-"+spec.Name+"-") {
				t.Errorf("namespace %s left after Down", ns)
			}
		}
		if _, err := os.Stat(StatePath(spec.Name)); err == nil {
			t.Errorf("state file %s left after Down", StatePath(spec.Name))
		}
	})
	ls, err := Listen(f.ServerNS(), f.Spec.Ports)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(sctx, ls) }()
	t.Cleanup(func() { // runs before Down (cleanups run last first)
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return f
}

// realConnects connects from the client namespace once per tuple, with the
// oracle's own rules (two tries; a handshake or refusal works).
func realConnects(t *testing.T, f *Fabric, ts []hash.FiveTuple) []bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ok := make([]bool, len(ts))
	var wg sync.WaitGroup
	for i, tp := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for try := 0; try < 2 && !ok[i]; try++ {
				res, err := dialFrom(ctx, f.ClientNS(), netip.AddrPortFrom(tp.Src, tp.SrcPort),
					netip.AddrPortFrom(tp.Dst, tp.DstPort), 1500*time.Millisecond)
				if err != nil {
					t.Errorf("connect %s: %v", tp, err)
					return
				}
				ok[i] = res != dialFailed
			}
		}()
	}
	wg.Wait()
	return ok
}

func sweep(src, dst netip.Addr, first uint16, n int, dport uint16) []hash.FiveTuple {
	ts := make([]hash.FiveTuple, n)
	for i := range ts {
		ts[i] = hash.FiveTuple{Src: src, Dst: dst, Proto: hash.ProtoTCP, SrcPort: first + uint16(i), DstPort: dport}
	}
	return ts
}

// compareWithReality checks the oracle's IPv4 verdicts against real
// connects and returns the expectations.
func compareWithReality(t *testing.T, f *Fabric, ts []hash.FiveTuple) []Expectation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	es, err := f.ExpectAll(ctx, ts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("oracle for %d tuples: %v", len(ts), time.Since(start).Round(time.Millisecond))
	real := realConnects(t, f, ts)
	works, fails := 0, 0
	for i, e := range es {
		if e.Verdict == Lossy {
			continue
		}
		if want := e.Verdict == Works; real[i] != want {
			t.Errorf("%s: oracle says %v (%s, fwd %v ret %v) but connect ok=%v",
				ts[i], e.Verdict, e.Reason, e.ForwardNodes(), e.ReturnNodes(), real[i])
		}
		if e.Verdict == Works {
			works++
		} else {
			fails++
		}
	}
	t.Logf("%d works, %d fails", works, fails)
	return es
}

func distinct(es []Expectation, pick func(Expectation) string) map[string]int {
	m := map[string]int{}
	for _, e := range es {
		m[pick(e)]++
	}
	return m
}

func nodeAt(hs []Hop, i int) string {
	if i < len(hs) {
		return hs[i].Node
	}
	return "-"
}

func TestSingleTierFabric(t *testing.T) {
	needNetns(t)
	spec := Spec{Name: "lt1", Width: 4, Seed: 1,
		Faults: mustFaults(t, "blackhole-fwd@p2", "drop-synack@p3", "silent@r2"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}
	f := upForTest(t, spec)

	// State file and status.
	g, err := Load(spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if g.Namespace("c") != "esl-lt1-c" || g.Server4 != f.Server4 || len(g.Spec.Faults) != 3 || g.Seeds["p2"] != f.Seeds["p2"] {
		t.Errorf("Load gave %+v", g)
	}
	st, err := g.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"p1..p4", "blackhole-fwd@p2", "all 8 present", "esl-lt1-c"} {
		if !strings.Contains(st, want) {
			t.Errorf("Status lacks %q:\n%s", want, st)
		}
	}
	names, err := List()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(" "+strings.Join(names, " ")+" ", " lt1 ") {
		t.Errorf("List() = %v, lacks lt1", names)
	}

	// IPv4: the oracle agrees with the kernel, ports spread over members.
	ts := sweep(f.Client4, f.Server4, 20000, 32, 3306)
	es := compareWithReality(t, f, ts)
	fwdP := distinct(es, func(e Expectation) string { return nodeAt(e.Forward, 1) })
	retP := distinct(es, func(e Expectation) string { return nodeAt(e.Return, 1) })
	t.Logf("forward members %v, return members %v", fwdP, retP)
	if len(fwdP) < 2 || len(retP) < 2 {
		t.Errorf("ports do not spread over members: forward %v return %v", fwdP, retP)
	}
	verdicts := distinct(es, func(e Expectation) string { return e.Verdict.String() })
	if verdicts["works"] == 0 || verdicts["fails"] == 0 {
		t.Errorf("verdicts %v: want both", verdicts)
	}
	for i, e := range es {
		p := nodeAt(e.Forward, 1)
		if p == "p2" && (e.Verdict != Fails || !strings.Contains(e.Reason, "p2")) {
			t.Errorf("%s through p2 is %v (%s)", ts[i], e.Verdict, e.Reason)
		}
		if p == "p2" && e.Forward[1].Out != "" {
			t.Errorf("%s: blackholed hop has an exit: %+v", ts[i], e.Forward)
		}
		if nodeAt(e.Return, 1) == "p3" && p != "p2" && !strings.Contains(e.Reason, "drop-synack") {
			t.Errorf("%s returns through p3 but %v (%s)", ts[i], e.Verdict, e.Reason)
		}
		if e.Verdict == Works && (len(e.Forward) != 3 || len(e.Return) != 3 ||
			e.Forward[0].In != "to-c" || e.Forward[2].Out != "to-s" || e.Return[2].Out != "to-c") {
			t.Errorf("%s: odd path %+v / %+v", ts[i], e.Forward, e.Return)
		}
	}

	checkObservedMatchesWalk(t, f, ts, es)

	// ICMP: no ports in the hash, so every echo id takes one path; the
	// oracle agrees with real pings, in both families.
	for _, fam := range []struct {
		src, dst netip.Addr
		proto    uint8
	}{{f.Client4, f.Server4, hash.ProtoICMP}, {f.Client6, f.Server6, hash.ProtoICMPv6}} {
		var icmp []hash.FiveTuple
		var ids []uint16
		for id := uint16(100); id < 108; id++ {
			icmp = append(icmp, hash.FiveTuple{Src: fam.src, Dst: fam.dst, Proto: fam.proto, SrcPort: id})
			ids = append(ids, id)
		}
		ies, err := f.ExpectAll(context.Background(), icmp)
		if err != nil {
			t.Fatal(err)
		}
		paths := distinct(ies, func(e Expectation) string {
			return fmt.Sprint(e.Verdict, e.ForwardNodes(), e.ReturnNodes())
		})
		t.Logf("ICMP %s: %v", fam.dst, paths)
		if len(paths) != 1 {
			t.Errorf("ICMP echo ids to %s take %d paths: %v", fam.dst, len(paths), paths)
		}
		got, err := pingAll(context.Background(), f.ClientNS(), fam.src, fam.dst, ids, 2, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for i, e := range ies {
			if (e.Verdict == Works) != got[ids[i]] {
				t.Errorf("ICMP %s: oracle %v (%s) but reply=%v", icmp[i], e.Verdict, e.Reason, got[ids[i]])
			}
		}
		if !fam.dst.Is6() {
			checkObservedMatchesWalk(t, f, icmp, ies)
		}
	}

	// IPv6: verdicts from real connects, hops from what the routers saw.
	ts6 := sweep(f.Client6, f.Server6, 21000, 32, 80)
	start := time.Now()
	es6, err := f.ExpectAll(context.Background(), ts6)
	if err != nil {
		t.Fatal(err)
	}
	v6 := distinct(es6, func(e Expectation) string { return e.Verdict.String() })
	t.Logf("IPv6 oracle for 32 tuples: %v in %v", v6, time.Since(start).Round(time.Millisecond))
	if v6["works"] == 0 || v6["fails"] == 0 {
		t.Errorf("IPv6 verdicts %v: want both", v6)
	}
	fwd6 := distinct(es6, func(e Expectation) string { return nodeAt(e.Forward, 1) })
	if len(fwd6) < 2 {
		t.Errorf("IPv6 ports do not spread: %v", fwd6)
	}
	for i, e := range es6 {
		p, rp := nodeAt(e.Forward, 1), nodeAt(e.Return, 1)
		var want Verdict
		switch {
		case p == "p2":
			want = Fails
			if len(e.Forward) != 2 || e.Forward[1].Out != "" || len(e.Return) != 0 {
				t.Errorf("%s: blackholed at p2 but path %+v / %+v", ts6[i], e.Forward, e.Return)
			}
		case rp == "p3":
			want = Fails
		case len(e.Forward) == 3 && len(e.Return) == 3:
			want = Works
		default:
			t.Errorf("%s: odd observed path %+v / %+v", ts6[i], e.Forward, e.Return)
			continue
		}
		if e.Verdict != want {
			t.Errorf("%s: %v (%s) on path %v / %v", ts6[i], e.Verdict, e.Reason, e.ForwardNodes(), e.ReturnNodes())
		}
	}

	// What ip -6 route get says, for the record (it is not used).
	agree := 0
	for i, e := range es6 {
		out, _, err := run(context.Background(), "", "ip", "-n", f.Namespace("r1"), "route", "get",
			f.Server6.String(), "from", f.Client6.String(), "iif", "to-c", "ipproto", "6",
			"sport", fmt.Sprint(ts6[i].SrcPort), "dport", "80")
		if err == nil && len(e.Forward) > 0 && strings.Contains(out, " dev "+e.Forward[0].Out+" ") {
			agree++
		}
	}
	t.Logf("ip -6 route get at r1 names the member IPv6 packets really take for %d of %d tuples", agree, len(es6))
}

// checkObservedMatchesWalk checks the route-get walk against the paths
// the routers recorded for the same (already sent) tuples.
func checkObservedMatchesWalk(t *testing.T, f *Fabric, ts []hash.FiveTuple, es []Expectation) {
	t.Helper()
	obs, err := f.observe(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es {
		fwd, ret := f.observedPaths(obs, ts[i])
		if a, b := fmt.Sprint(hopNodes(fwd)), fmt.Sprint(e.ForwardNodes()); a != b {
			t.Errorf("%s: walk forward %s, observed %s", ts[i], b, a)
		}
		if len(e.Forward) > 0 && e.Forward[len(e.Forward)-1].Out == "" {
			continue // the answer never existed
		}
		if a, b := fmt.Sprint(hopNodes(ret)), fmt.Sprint(e.ReturnNodes()); a != b {
			t.Errorf("%s: walk return %s, observed %s", ts[i], b, a)
		}
	}
}

func TestTwoTierFabric(t *testing.T) {
	needNetns(t)
	spec := Spec{Name: "lt2", Width: 2, Width2: 3, Seed: 9, Ports: []uint16{443},
		Faults: mustFaults(t, "blackhole-ret@q2", "link-drop@p1-q3"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}
	f := upForTest(t, spec)
	if st, err := f.Status(context.Background()); err != nil || !strings.Contains(st, "q1..q3") {
		t.Errorf("Status: %v\n%s", err, st)
	}
	ts := sweep(f.Client4, f.Server4, 30000, 32, 443)
	es := compareWithReality(t, f, ts)
	pairs := distinct(es, func(e Expectation) string { return nodeAt(e.Forward, 1) + nodeAt(e.Forward, 2) })
	t.Logf("forward (p,q) pairs: %v", pairs)
	if len(pairs) < 3 {
		t.Errorf("only %d (p,q) pairs among 32 ports: %v", len(pairs), pairs)
	}
	checkObservedMatchesWalk(t, f, ts, es)
	ts6 := sweep(f.Client6, f.Server6, 30000, 32, 443)
	es6, err := f.ExpectAll(context.Background(), ts6)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range es6 {
		if e.Verdict == Works && (len(e.Forward) != 4 || len(e.Return) != 4) {
			t.Errorf("%s: works with path %v / %v", ts6[i], e.ForwardNodes(), e.ReturnNodes())
		}
		if nodeAt(e.Return, 1) == "q2" && e.Verdict != Fails {
			t.Errorf("%s returns through q2 (blackhole-ret) but %v", ts6[i], e.Verdict)
		}
	}
	t.Logf("IPv6: %v", distinct(es6, func(e Expectation) string { return e.Verdict.String() }))
	for i, e := range es {
		if e.Verdict == Works && (len(e.Forward) != 4 || len(e.Return) != 4) {
			t.Errorf("%s: works with path %v / %v", ts[i], e.ForwardNodes(), e.ReturnNodes())
		}
		if nodeAt(e.Return, 1) == "q2" && e.Verdict != Fails {
			t.Errorf("%s returns through q2 (blackhole-ret) but %v", ts[i], e.Verdict)
		}
	}
}

func TestLossyFabric(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "lt3", Width: 2, Seed: 3, Faults: mustFaults(t, "loss=50@p1"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	ts := append(sweep(f.Client4, f.Server4, 40000, 16, 80), sweep(f.Client6, f.Server6, 40000, 16, 80)...)
	es, err := f.ExpectAll(context.Background(), ts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		crosses := nodeAt(e.Forward, 1) == "p1" || nodeAt(e.Return, 1) == "p1"
		if crosses != (e.Verdict == Lossy) {
			t.Errorf("path %v / %v: verdict %v (%s)", e.ForwardNodes(), e.ReturnNodes(), e.Verdict, e.Reason)
		}
	}
}

func TestUpRejectsBadSpecAndCleansLeftovers(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	if _, err := Up(ctx, Spec{Name: "lt4", Width: 2, Faults: mustFaults(t, "silent@q1"), ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed}); err == nil {
		t.Fatal("Up accepted a fault on a missing router")
	}
	// A leftover namespace of the same name is removed by Up and Down.
	if _, _, err := run(ctx, "", "ip", "netns", "add", "esl-lt4-p9"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { run(context.Background(), "", "ip", "netns", "del", "esl-lt4-p9") })
	f := upForTest(t, Spec{Name: "lt4", Width: 1, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
	nss, _ := netnsNames(ctx)
	for _, ns := range nss {
		if ns == "esl-lt4-p9" {
			t.Error("Up kept a leftover namespace")
		}
	}
	if _, err := f.Expect(ctx, hash.FiveTuple{Src: f.Client4, Dst: netip.MustParseAddr("198.18.2.9"), Proto: 6, SrcPort: 1, DstPort: 2}); err == nil {
		t.Error("Expect accepted a tuple to a missing host")
	}
	e, err := f.Expect(ctx, tuple4(5555, 80))
	if err != nil || e.Verdict != Works || strings.Join(e.ForwardNodes(), " ") != "r1 p1 r2" {
		t.Errorf("Expect on a healthy 1-wide fabric: %+v, %v", e, err)
	}
}

// TestTimeExceeded checks who answers a probe whose TTL runs out at the
// p tier in the inbound ICMP source mode: the router, from its address on
// the link the probe came in on, except the silent one. (icmpsrc_test.go
// covers the default router-ID mode.)
func TestTimeExceeded(t *testing.T) {
	needNetns(t)
	f := upForTest(t, Spec{Name: "lt5", Width: 2, Seed: 5, Faults: mustFaults(t, "silent@p1"), ICMPSource: ICMPFromInbound, ICMPPath: ICMPPathFixed})
	for _, fam := range []struct {
		src, dst netip.Addr
		network  string
		teType   byte
	}{{f.Client4, f.Server4, "ip4:icmp", 11}, {f.Client6, f.Server6, "ip6:ipv6-icmp", 3}} {
		var conn net.PacketConn
		if err := InNamespace(f.ClientNS(), func() error {
			var err error
			conn, err = net.ListenPacket(fam.network, fam.src.String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		ts := sweep(fam.src, fam.dst, 50000, 16, 80)
		var wg sync.WaitGroup
		for _, tp := range ts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				InNamespace(f.ClientNS(), func() error {
					d := net.Dialer{
						LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(tp.Src, tp.SrcPort)),
						Timeout:   300 * time.Millisecond,
						Control: func(_, _ string, c syscall.RawConn) error {
							return c.Control(func(fd uintptr) {
								if fam.src.Is4() {
									unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_TTL, 2)
								} else {
									unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, 2)
								}
							})
						},
					}
					if c, err := d.Dial("tcp", netip.AddrPortFrom(tp.Dst, tp.DstPort).String()); err == nil {
						c.Close()
						t.Errorf("%s: connected with a TTL of 2", tp)
					}
					return nil
				})
			}()
		}
		from := map[string]int{}
		buf := make([]byte, 1500)
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			conn.SetReadDeadline(deadline)
			n, addr, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if n > 0 && buf[0] == fam.teType {
				a, _ := netip.AddrFromSlice(addr.(*net.IPAddr).IP)
				from[a.Unmap().String()+"="+f.NodeOf(a.Unmap())]++
			}
		}
		wg.Wait()
		conn.Close()
		t.Logf("time-exceeded for %s from %v", fam.dst, from)
		es, err := f.ExpectAll(context.Background(), ts)
		if err != nil {
			t.Fatal(err)
		}
		viaP2 := 0
		for _, e := range es {
			if nodeAt(e.Forward, 1) == "p2" {
				viaP2++
			}
		}
		if viaP2 == 0 || viaP2 == len(es) {
			t.Fatalf("all or none of the ports go through p2 (%d of %d)", viaP2, len(es))
		}
		p2 := f.Addr("p2", "r1", fam.src.Is6()).String() + "=p2"
		if len(from) != 1 || from[p2] == 0 {
			t.Errorf("time-exceeded from %v, want only from %s (p1 is silent)", from, p2)
		}
	}
}

// TestUpCleansUpOnError interrupts Up part way: whatever it made is gone.
func TestUpCleansUpOnError(t *testing.T) {
	needNetns(t)
	for _, d := range []time.Duration{5 * time.Millisecond, 30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		f, err := Up(ctx, Spec{Name: "lt6", Width: 8, Width2: 4, ICMPSource: ICMPFromRouterID, ICMPPath: ICMPPathFixed})
		cancel()
		if err == nil {
			t.Logf("Up finished within %v", d)
			if err := f.Down(context.Background()); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Logf("Up cut after %v: %v", d, err)
		nss, err := netnsNames(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range nss {
			if strings.HasPrefix(ns, "esl-lt6-") {
				t.Errorf("namespace %s left after a failed Up", ns)
			}
		}
		if _, err := os.Stat(StatePath("lt6")); err == nil {
			t.Error("state file left after a failed Up")
		}
	}
}
