package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/lab"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// binary is the ecmpscan built once for all tests, as a user would run it.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv("ECMPSCAN_E2E_HELPER") == "1" {
		os.Exit(helperMain(os.Args[1:])) // this binary, run again in a namespace
	}
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test skips with its reason
		}
		dir, err := os.MkdirTemp("", "ecmpscan-e2e")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "ecmpscan")
		build := exec.Command("go", "build", "-o", binary, "github.com/ecmpscan/ecmpscan/cmd/ecmpscan")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build ecmpscan: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end lab tests skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to build network namespaces (run make test as root)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (make deps installs it)", tool)
		}
	}
}

// fabric brings a lab up with the CLI and tears it down when the test ends,
// also when it fails.
func fabric(t *testing.T, name string, args ...string) *lab.Fabric {
	t.Helper()
	needRoot(t)
	t.Cleanup(func() {
		if out, err := exec.Command(binary, "lab", "down", "--name", name).CombinedOutput(); err != nil {
			t.Errorf("lab down: %v\n%s", err, out)
		}
	})
	cmd := exec.Command(binary, append([]string{"lab", "up", "--name", name}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab up %v: %v\n%s", args, err, out)
	}
	f, err := lab.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// sweepDoc is the part of the JSON contract the tests check.
type sweepDoc struct {
	SchemaVersion int  `json:"schema_version"`
	Interrupted   bool `json:"interrupted"`
	Target        struct {
		Addr string `json:"addr"`
		Port int    `json:"port"`
	} `json:"target"`
	Mode  string `json:"mode"`
	Ports []struct {
		Sport    uint16 `json:"sport"`
		Sent     int    `json:"sent"`
		Received int    `json:"received"`
		State    string `json:"state"`
	} `json:"ports"`
	ICMP struct {
		Sent     int    `json:"sent"`
		Received int    `json:"received"`
		State    string `json:"state"`
		IDs      []struct {
			ID uint16 `json:"id"`
		} `json:"ids"`
	} `json:"icmp"`
	Summary struct {
		Kind         string   `json:"kind"`
		Verdict      string   `json:"verdict"`
		ExitCode     int      `json:"exit_code"`
		FailingPorts []uint16 `json:"failing_ports"`
	} `json:"summary"`
}

func (d sweepDoc) states() map[uint16]string {
	m := map[uint16]string{}
	for _, p := range d.Ports {
		m[p.Sport] = p.State
	}
	return m
}

// run runs the binary inside the client namespace, optionally as another
// user through setpriv, and returns stdout, stderr and the exit code.
func run(t *testing.T, f *lab.Fabric, prefix []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	full := append([]string{"netns", "exec", f.ClientNS()}, prefix...)
	full = append(full, binary)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "ip", full...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func sweep(t *testing.T, f *lab.Fabric, prefix []string, args ...string) (sweepDoc, int) {
	t.Helper()
	out, stderr, code := run(t, f, prefix, append([]string{"sweep", "--format", "json"}, args...)...)
	var doc sweepDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("sweep %v: exit %d, output is not one JSON document: %v\nstdout: %s\nstderr: %s", args, code, err, out, stderr)
	}
	if err := schematest.Validate(schematest.Sweep, []byte(out)); err != nil {
		t.Errorf("sweep %v: the document breaks its schema: %v", args, err)
	}
	if doc.SchemaVersion != 1 {
		t.Errorf("schema_version %d, want 1", doc.SchemaVersion)
	}
	return doc, code
}

// oracle asks the lab which source ports must fail, which may lose probes,
// and whether ICMP echo gets through, from the kernel's routing decisions.
func oracle(t *testing.T, f *lab.Fabric, dst netip.AddrPort, sports []uint16) (fails, lossy map[uint16]bool, icmp lab.Verdict) {
	t.Helper()
	src := f.Client4
	if dst.Addr().Is6() {
		src = f.Client6
	}
	tuples := make([]hash.FiveTuple, 0, len(sports)+1)
	for _, sp := range sports {
		tuples = append(tuples, hash.FiveTuple{Src: src, Dst: dst.Addr(), Proto: hash.ProtoTCP, SrcPort: sp, DstPort: dst.Port()})
	}
	echoProto := hash.ProtoICMP
	if dst.Addr().Is6() {
		echoProto = hash.ProtoICMPv6
	}
	tuples = append(tuples, hash.FiveTuple{Src: src, Dst: dst.Addr(), Proto: echoProto, SrcPort: 1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exps, err := f.ExpectAll(ctx, tuples)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	fails, lossy = map[uint16]bool{}, map[uint16]bool{}
	for i, sp := range sports {
		switch exps[i].Verdict {
		case lab.Fails:
			fails[sp] = true
		case lab.Lossy:
			lossy[sp] = true
		}
	}
	return fails, lossy, exps[len(sports)].Verdict
}

func portRange(first, n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(first + i)
	}
	return out
}

func keys(m map[uint16]bool) []uint16 {
	out := make([]uint16, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// checkAgainstOracle asserts the sweep found exactly the ports the kernel
// oracle says must fail, the right ICMP state and the documented exit code.
func checkAgainstOracle(t *testing.T, f *lab.Fabric, dst netip.AddrPort, sports []uint16, doc sweepDoc, code int) {
	t.Helper()
	fails, lossy, icmp := oracle(t, f, dst, sports)
	states := doc.states()
	if len(states) != len(sports) {
		t.Fatalf("sweep reported %d ports, want %d", len(states), len(sports))
	}
	var gotFail []uint16
	for _, sp := range sports {
		st := states[sp]
		switch {
		case lossy[sp]:
			// A lossy path may show any state; it must not hide a dead one.
		case fails[sp] && st != "fail":
			t.Errorf("port %d: state %s, oracle says it always fails", sp, st)
		case !fails[sp] && st != "ok":
			t.Errorf("port %d: state %s, oracle says it works", sp, st)
		}
		if st == "fail" && !lossy[sp] {
			gotFail = append(gotFail, sp)
		}
	}
	if want := keys(fails); !slices.Equal(gotFail, want) {
		t.Errorf("failing ports %v, oracle %v", gotFail, want)
	}
	wantICMP := map[lab.Verdict]string{lab.Works: "ok", lab.Fails: "fail"}[icmp]
	if wantICMP != "" && doc.ICMP.State != wantICMP {
		t.Errorf("icmp state %s, oracle says %s", doc.ICMP.State, icmp)
	}
	wantCode := 0
	switch {
	case len(fails) == len(sports):
		wantCode = 4
	case len(fails) > 0:
		wantCode = 1
	}
	if len(lossy) == 0 && code != wantCode {
		t.Errorf("exit %d, want %d (verdict %q)", code, wantCode, doc.Summary.Verdict)
	}
	if code != doc.Summary.ExitCode {
		t.Errorf("exit %d but JSON says exit_code %d", code, doc.Summary.ExitCode)
	}
	t.Logf("%d ports, %d fail (oracle %d), icmp %s: %s", len(sports), len(gotFail), len(fails), doc.ICMP.State, doc.Summary.Verdict)
}

var (
	server4 = netip.MustParseAddrPort("198.18.2.2:3306")
	server6 = netip.MustParseAddrPort("[2001:db8:2::2]:3306")
)

// TestSweepMatchesOracle runs raw sweeps over fabrics of several widths,
// tiers and fault kinds; the set of failing ports must equal the oracle's.
func TestSweepMatchesOracle(t *testing.T) {
	cases := []struct {
		name    string
		labArgs []string
		dst     netip.AddrPort
		ports   int
	}{
		{"w4-blackhole-fwd", []string{"--width", "4", "--seed", "11", "--fault", "blackhole-fwd@p2"}, server4, 64},
		{"w2-blackhole-ret", []string{"--width", "2", "--seed", "5", "--fault", "blackhole-ret@p1"}, server4, 48},
		{"w8-drop-synack", []string{"--width", "8", "--seed", "23", "--fault", "drop-synack@p6"}, server4, 96},
		{"2x3-link-drop", []string{"--width", "2", "--width2", "3", "--seed", "4", "--fault", "link-drop@p1-q2"}, server4, 64},
		{"3x2-silent-and-blackhole", []string{"--width", "3", "--width2", "2", "--seed", "9", "--fault", "silent@q1", "--fault", "blackhole-fwd@q2"}, server4, 64},
		{"w4-healthy-silent", []string{"--width", "4", "--seed", "2", "--fault", "silent@p1"}, server4, 64},
		{"v6-w4-blackhole-fwd", []string{"--width", "4", "--seed", "17", "--fault", "blackhole-fwd@p3"}, server6, 48},
		{"v6-2x2-drop-synack", []string{"--width", "2", "--width2", "2", "--seed", "8", "--fault", "drop-synack@q1"}, server6, 48},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fabric(t, fmt.Sprintf("t%d", i), c.labArgs...)
			sports := portRange(30000, c.ports)
			doc, code := sweep(t, f, nil, c.dst.String(), "--sport", fmt.Sprintf("30000-%d", 30000+c.ports-1), "--rate", "2000")
			if doc.Mode != "raw" {
				t.Errorf("mode %s, want raw as root", doc.Mode)
			}
			checkAgainstOracle(t, f, c.dst, sports, doc, code)
		})
	}
}

// TestSweepRandomLoss: ports through a lossy member may lose probes, every
// other port must be clean, and nothing may be called dead on a lossy path
// unless the oracle also says so.
func TestSweepRandomLoss(t *testing.T) {
	f := fabric(t, "tloss", "--width", "2", "--seed", "31", "--fault", "loss=30@p1")
	sports := portRange(30000, 64)
	doc, _ := sweep(t, f, nil, server4.String(), "--sport", "30000-30063", "-c", "6", "--rate", "2000")
	checkAgainstOracle(t, f, server4, sports, doc, doc.Summary.ExitCode)
	_, lossy, _ := oracle(t, f, server4, sports)
	if len(lossy) == 0 {
		t.Fatal("oracle puts no port through the lossy member; pick another seed")
	}
	flaky := 0
	for _, p := range doc.Ports {
		if lossy[p.Sport] && p.State != "ok" {
			flaky++
		}
	}
	// 30% loss each way over 6 probes: a port with no loss at all has
	// probability 0.49^6, so most lossy ports must show it.
	if flaky == 0 {
		t.Errorf("no loss seen on the %d ports through the lossy member", len(lossy))
	}
}

// TestSweepTargetDown: a silent address behind the fabric fails on every
// port: exit 4, not an ECMP fault.
func TestSweepTargetDown(t *testing.T) {
	f := fabric(t, "tdown", "--width", "2", "--seed", "1")
	dst := netip.MustParseAddrPort("198.18.2.99:3306") // nobody answers ARP for it
	doc, code := sweep(t, f, nil, dst.String(), "--sport", "30000-30015", "--timeout", "500ms")
	if code != 4 || doc.Summary.Kind != "target-down" {
		t.Errorf("exit %d kind %s, want 4 target-down (%s)", code, doc.Summary.Kind, doc.Summary.Verdict)
	}
}

// TestSweepConnectModeUnprivileged: an ordinary user gets connect-mode
// results that match the oracle, and raw mode is refused with a hint.
func TestSweepConnectModeUnprivileged(t *testing.T) {
	f := fabric(t, "tconn", "--width", "4", "--seed", "13", "--fault", "blackhole-fwd@p4")
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop privileges")
	}
	nobody := []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"}
	sports := portRange(30000, 48)
	doc, code := sweep(t, f, nobody, server4.String(), "--sport", "30000-30047", "--rate", "1000")
	// A new namespace forbids ping sockets (ping_group_range "1 0").
	if doc.Mode != "connect" || doc.ICMP.State != "skipped" {
		t.Errorf("mode %s icmp %s, want connect mode with ICMP skipped", doc.Mode, doc.ICMP.State)
	}
	fails, _, icmp := oracle(t, f, server4, sports)
	if got := doc.Summary.FailingPorts; !slices.Equal(got, keys(fails)) {
		t.Errorf("connect mode failing ports %v, oracle %v", got, keys(fails))
	}
	if want := map[bool]int{true: 1, false: 0}[len(fails) > 0]; code != want {
		t.Errorf("exit %d, want %d", code, want)
	}

	// Where the kernel allows unprivileged ping sockets, ICMP is probed too.
	if out, err := exec.Command("ip", "netns", "exec", f.ClientNS(), "sysctl", "-q", "net.ipv4.ping_group_range=0 2147483647").CombinedOutput(); err != nil {
		t.Fatalf("allow ping sockets: %v %s", err, out)
	}
	doc, _ = sweep(t, f, nobody, server4.String(), "--sport", "30000-30047", "--rate", "1000")
	wantICMP := map[lab.Verdict]string{lab.Works: "ok", lab.Fails: "fail"}[icmp]
	if doc.Mode != "connect" || doc.ICMP.State != wantICMP || doc.ICMP.Sent == 0 {
		t.Errorf("mode %s icmp %s (%d sent), want connect mode with ICMP %s", doc.Mode, doc.ICMP.State, doc.ICMP.Sent, wantICMP)
	}

	_, stderr, code := run(t, f, nobody, "sweep", server4.String(), "--mode", "raw", "--sport", "30000")
	if code != 3 || !strings.Contains(stderr, "setcap cap_net_raw+ep") {
		t.Errorf("raw mode unprivileged: exit %d, stderr %q; want 3 with the setcap hint", code, stderr)
	}
}

// TestSweepInterrupted: SIGINT mid-sweep prints valid partial JSON and exits 130.
func TestSweepInterrupted(t *testing.T) {
	f := fabric(t, "tint", "--width", "2", "--seed", "3")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// 2000 probes at 100/s would take 20 s: long enough to interrupt.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", f.ClientNS(), binary, "sweep", server4.String(),
		"--format", "json", "--sport", "30000-30999", "-c", "2", "--rate", "100", "--icmp", "0")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the sweep is sending (the server has seen SYNs), then interrupt.
	waitFor(t, 10*time.Second, func() bool { return synsSeen(f) >= 20 })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want 130", err)
	}
	var doc sweepDoc
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("partial output is not valid JSON: %v\n%s", err, out.String())
	}
	if !doc.Interrupted || len(doc.Ports) == 0 || len(doc.Ports) >= 1000 {
		t.Errorf("interrupted=%v with %d ports; want a partial, flagged result", doc.Interrupted, len(doc.Ports))
	}
	for _, p := range doc.Ports {
		if p.Sent == 0 {
			t.Errorf("port %d listed with nothing sent", p.Sport)
		}
	}
}

// synsSeen reads how many TCP segments the server namespace has received.
func synsSeen(f *lab.Fabric) int {
	out, err := exec.Command("ip", "netns", "exec", f.ServerNS(), "cat", "/proc/net/snmp").Output()
	if err != nil {
		return 0
	}
	var header []string
	for _, line := range strings.Split(string(out), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || fields[0] != "Tcp:" {
			continue
		}
		if header == nil {
			header = fields
			continue
		}
		for i, h := range header {
			if h == "InSegs" && i < len(fields) {
				var n int
				fmt.Sscan(fields[i], &n)
				return n
			}
		}
	}
	return 0
}

// proc is a long-running program in a namespace, stopped at cleanup; log
// is what it wrote on stderr.
type proc struct {
	mu  sync.Mutex
	log []string
}

func (p *proc) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.log, "\n")
}

func (p *proc) logged(s string) bool {
	return strings.Contains(p.text(), s)
}

// startIn runs name in namespace ns until the test ends. With ready set it
// waits (20 s at most) for a line of stderr containing it, and fails if the
// program exits first.
func startIn(t *testing.T, ns, ready, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{}
	up := make(chan bool, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			if len(p.log) < 5000 {
				p.log = append(p.log, sc.Text())
			}
			p.mu.Unlock()
			if ready != "" && strings.Contains(sc.Text(), ready) {
				select {
				case up <- true:
				default:
				}
			}
		}
		up <- false
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", filepath.Base(name), p.text())
		}
	})
	if ready == "" {
		return p
	}
	select {
	case ok := <-up:
		if !ok {
			t.Fatalf("%s exited: %s", filepath.Base(name), p.text())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not start", filepath.Base(name))
	}
	return p
}

// waitFor polls a condition with a ticker, bounded in time.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(limit)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("condition not met within %s", limit)
		}
	}
}

// TestSweepRandomFabrics draws fabrics the fixed cases do not cover: width,
// tiers, seed, family, fault kind and the routers' ICMP behaviour (source
// address and path) come from ECMPSCAN_E2E_SEED (a fixed default keeps CI
// repeatable; set it to explore).
func TestSweepRandomFabrics(t *testing.T) {
	seed := uint64(20261122)
	if s := os.Getenv("ECMPSCAN_E2E_SEED"); s != "" {
		if _, err := fmt.Sscan(s, &seed); err != nil {
			t.Fatalf("ECMPSCAN_E2E_SEED=%q: %v", s, err)
		}
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	kinds := []string{"blackhole-fwd", "blackhole-ret", "drop-synack", "link-drop", "none"}
	for i := range 3 {
		w, w2 := 2+rng.IntN(7), 0
		if rng.IntN(2) == 0 {
			w, w2 = 2+rng.IntN(3), 2+rng.IntN(3)
		}
		args := []string{"--width", fmt.Sprint(w), "--width2", fmt.Sprint(w2), "--seed", fmt.Sprint(rng.Uint32()),
			"--icmp-source", lab.ICMPSources[rng.IntN(len(lab.ICMPSources))], "--icmp-path", lab.ICMPPaths[rng.IntN(len(lab.ICMPPaths))]}
		node := fmt.Sprintf("p%d", 1+rng.IntN(w))
		if w2 > 0 && rng.IntN(2) == 0 {
			node = fmt.Sprintf("q%d", 1+rng.IntN(w2))
		}
		switch kind := kinds[rng.IntN(len(kinds))]; {
		case kind == "none":
		case kind == "link-drop" && w2 > 0:
			args = append(args, "--fault", fmt.Sprintf("link-drop@p%d-q%d", 1+rng.IntN(w), 1+rng.IntN(w2)))
		case kind == "link-drop":
			args = append(args, "--fault", fmt.Sprintf("link-drop@r1-%s", node))
		default:
			args = append(args, "--fault", kind+"@"+node)
		}
		if w2 > 0 && rng.IntN(2) == 0 {
			args = append(args, "--fault", fmt.Sprintf("silent@q%d", 1+rng.IntN(w2)))
		}
		dst := server4
		if rng.IntN(3) == 0 {
			dst = server6
		}
		first := 20000 + rng.IntN(20000)
		n := 32 + rng.IntN(64)
		t.Run(fmt.Sprintf("%d-%s-%v", i, map[bool]string{true: "v6", false: "v4"}[dst.Addr().Is6()], args), func(t *testing.T) {
			f := fabric(t, fmt.Sprintf("r%d", i), args...)
			doc, code := sweep(t, f, nil, dst.String(), "--sport", fmt.Sprintf("%d-%d", first, first+n-1), "--rate", "2000")
			checkAgainstOracle(t, f, dst, portRange(first, n), doc, code)
		})
	}
}
