package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/internal/lab"
)

// TestTraceAccuracy measures how often the trace diagnosis is right over
// random fabrics: direction accuracy and top-suspect accuracy per ICMP
// source mode x ICMP path x fault kind. It is a measurement, not a gate:
// it runs only with ECMPSCAN_ACCURACY=N (N fabrics; make accuracy) and
// prints the table for the README. ECMPSCAN_E2E_SEED picks the draw;
// ECMPSCAN_ACCURACY_RESPONDER=1 traces with a responder at the server.
func TestTraceAccuracy(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ECMPSCAN_ACCURACY"))
	if n <= 0 {
		t.Skip("a measurement run: set ECMPSCAN_ACCURACY=N (make accuracy)")
	}
	needRoot(t)
	seed := uint64(2026)
	if s := os.Getenv("ECMPSCAN_E2E_SEED"); s != "" {
		fmt.Sscan(s, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, seed*3+1))
	only := -1 // ECMPSCAN_ACCURACY_ONLY=K reruns draw K alone, to look into it
	if s := os.Getenv("ECMPSCAN_ACCURACY_ONLY"); s != "" {
		only, _ = strconv.Atoi(s)
	}
	// ECMPSCAN_ACCURACY_PREFIX names the labs (default a0..a7), so two
	// draws can run at once.
	prefix := "a"
	if p := os.Getenv("ECMPSCAN_ACCURACY_PREFIX"); p != "" {
		prefix = p
	}
	tally := map[string]*accuracy{}
	byIPID := map[string]*accuracy{} // IPv4 by IP ID mode, and IPv6
	byLimit := map[string]*accuracy{}
	byFirstHop := map[string]*accuracy{} // by whether r1 answers
	for i := range n {
		c := drawCase(rng)
		if only >= 0 && i != only {
			continue
		}
		got := runCase(t, fmt.Sprintf("%s%d", prefix, i%8), c)
		key := c.source + " " + c.path + " " + c.kind
		if tally[key] == nil {
			tally[key] = &accuracy{}
		}
		tally[key].add(got)
		family := c.family()
		if byIPID[family] == nil {
			byIPID[family] = &accuracy{}
		}
		byIPID[family].add(got)
		limit := map[bool]string{true: "linux's", false: "none"}[c.limited]
		if byLimit[limit] == nil {
			byLimit[limit] = &accuracy{}
		}
		byLimit[limit].add(got)
		first := map[bool]string{true: "silent", false: "answers"}[slices.Contains(c.args, "silent@r1")]
		if byFirstHop[first] == nil {
			byFirstHop[first] = &accuracy{}
		}
		byFirstHop[first].add(got)
		t.Logf("%3d %-40s v6=%v sport %d-%d: %s", i, strings.Join(c.args, " "), c.v6, c.first, c.first+c.ports-1, got)
	}
	fmt.Println(accuracyTable(tally, "icmp source", "icmp path", "fault"))
	fmt.Println(accuracyTable(byIPID, "family", "ip id"))
	fmt.Println(accuracyTable(byLimit, "icmp rate limit"))
	fmt.Println(accuracyTable(byFirstHop, "first hop (r1)"))
}

// accuracyCase is one random fabric with one fault (or none).
type accuracyCase struct {
	source, path, kind string
	args               []string
	want               string // direction the fault implies
	at, before         string // the faulty node and, for a link, the node before it
	v6                 bool
	ipid               bool // routers share one IP ID counter each
	limited            bool // routers rate-limit their ICMP errors
	ports, first       int
}

func drawCase(rng *rand.Rand) accuracyCase {
	c := accuracyCase{source: lab.ICMPSources[rng.IntN(len(lab.ICMPSources))], path: lab.ICMPPaths[rng.IntN(len(lab.ICMPPaths))]}
	w, w2 := 2+rng.IntN(15), 0
	if rng.IntN(2) == 0 {
		w, w2 = 2+rng.IntN(5), 2+rng.IntN(5)
	}
	c.args = []string{"--width", fmt.Sprint(w), "--width2", fmt.Sprint(w2), "--seed", fmt.Sprint(rng.Uint32()),
		"--icmp-source", c.source, "--icmp-path", c.path}
	fd := drawFault(rng, w, w2, true)
	c.kind, c.want, c.at, c.before = fd.kind, fd.want, fd.at, fd.before
	if fd.fault != "" {
		c.args = append(c.args, "--fault", fd.fault)
	}
	// A router that sends no time-exceeded, a third of the time: at
	// either tier, or the last router before the server.
	if rng.IntN(3) == 0 {
		silent := fmt.Sprintf("p%d", 1+rng.IntN(w))
		switch k := rng.IntN(3); {
		case k == 1 && w2 > 0:
			silent = fmt.Sprintf("q%d", 1+rng.IntN(w2))
		case k == 2:
			silent = "r2"
		}
		c.args = append(c.args, "--fault", "silent@"+silent)
	}
	c.v6 = rng.IntN(3) == 0
	c.ports = 256 // classified end to end; trace picks the failing flows and some healthy ones
	c.first = 20000 + rng.IntN(20000)
	c.args = withHashSeed(withIPOptionsDraw(withRoutesDraw(withSilentFirstHopDraw(withRateLimitDraw(withIPIDDraw(c.args, c.v6)))), c.v6))
	c.ipid = slices.Contains(c.args, lab.IPIDShared)
	c.limited = flagValue(c.args, "--icmp-ratelimit") != "0"
	return c
}

// family is the case's address family and, for IPv4, its IP ID mode.
func (c accuracyCase) family() string {
	switch {
	case c.v6:
		return "ipv6 none"
	case c.ipid:
		return "ipv4 " + lab.IPIDShared
	}
	return "ipv4 " + lab.IPIDKernel
}

// withRateLimitDraw gives half of the fabrics routers that rate-limit
// their ICMP errors as Linux does (lab up's default) and the other half
// routers that do not (as much gear with a generous limit), by the second
// bit of the fabric's seed, so the rest of a draw stays what it was
// before rate limits were drawn. ECMPSCAN_ACCURACY_RATELIMIT=MS gives
// every fabric that limit instead.
func withRateLimitDraw(args []string) []string {
	ms := "0"
	if seedOf(args)&2 != 0 {
		ms = fmt.Sprint(lab.DefaultICMPRateLimitMS)
	}
	if m := os.Getenv("ECMPSCAN_ACCURACY_RATELIMIT"); m != "" {
		ms = m
	}
	return append(slices.Clone(args), "--icmp-ratelimit", ms)
}

// withSilentFirstHopDraw makes the client's gateway, r1, send no
// time-exceeded in a quarter of the fabrics (as many cloud and
// data-centre gateways do), by the third and fourth bits of the fabric's
// seed, so the rest of a draw stays what it was.
func withSilentFirstHopDraw(args []string) []string {
	if seedOf(args)&12 != 12 {
		return args
	}
	return append(slices.Clone(args), "--fault", "silent@r1")
}

// withRoutesDraw gives half of the fabrics routers that route every link
// and router ID (--routes all), whose addresses then answer the alias
// test's echo requests, by the fifth bit of the fabric's seed.
// ECMPSCAN_ACCURACY_ROUTES=hosts or all gives every fabric that mode.
func withRoutesDraw(args []string) []string {
	return withHalfDrawn(args, 16, "ECMPSCAN_ACCURACY_ROUTES", "--routes", lab.RoutesHosts, lab.RoutesAll)
}

// withIPOptionsDraw gives half of the IPv4 fabrics routers that drop
// packets with options (--ip-options drop), as much gear does, so that the
// alias test's echo requests come back unstamped or not at all, by the
// sixth bit of the fabric's seed. ECMPSCAN_ACCURACY_IPOPTIONS=honour or
// drop gives every IPv4 fabric that mode.
func withIPOptionsDraw(args []string, v6 bool) []string {
	if v6 {
		return args
	}
	return withHalfDrawn(args, 32, "ECMPSCAN_ACCURACY_IPOPTIONS", "--ip-options", lab.IPOptionsHonour, lab.IPOptionsDrop)
}

// withHalfDrawn gives the fabrics whose seed has bit set flag's mode alt
// instead of the default def: drawn without the random source, so the
// rest of a draw stays what it was before the mode was drawn. The
// environment variable env, when set, gives every fabric its mode.
func withHalfDrawn(args []string, bit uint32, env, flag, def, alt string) []string {
	mode := def
	if seedOf(args)&bit != 0 {
		mode = alt
	}
	if m := os.Getenv(env); m != "" {
		mode = m
	}
	if mode == def {
		return args
	}
	return append(slices.Clone(args), flag, mode)
}

// withHashSeed gives every fabric one multipath hash seed on all its
// routers when ECMPSCAN_ACCURACY_HASHSEED=shared (lab up --hash-seed):
// flows then come back over the members they went out by, which one end
// cannot see, so it is measured apart, not drawn.
func withHashSeed(args []string) []string {
	m := os.Getenv("ECMPSCAN_ACCURACY_HASHSEED")
	if m == "" {
		return args
	}
	return append(slices.Clone(args), "--hash-seed", m)
}

// seedOf is the value of a fabric's --seed argument, 0 without one.
func seedOf(args []string) uint32 {
	var seed uint32
	fmt.Sscan(flagValue(args, "--seed"), &seed)
	return seed
}

// flagValue is the value of the last of a flag's arguments, "" without one.
func flagValue(args []string, name string) string {
	for i := len(args) - 2; i >= 0; i-- {
		if args[i] == name {
			return args[i+1]
		}
	}
	return ""
}

// withIPIDDraw gives half of the IPv4 fabrics routers that number their
// packets from one counter (--ipid shared), by the parity of the fabric's
// seed. ECMPSCAN_ACCURACY_IPID=kernel or shared gives every IPv4 fabric
// that mode instead, to measure what shared counters change on the same
// fabrics.
func withIPIDDraw(args []string, v6 bool) []string {
	if v6 {
		return args
	}
	return withHalfDrawn(args, 1, "ECMPSCAN_ACCURACY_IPID", "--ipid", lab.IPIDKernel, lab.IPIDShared)
}

// caseResult is how the diagnosis did on one fabric.
type caseResult struct {
	direction, suspect bool // right direction; right first suspect (forward faults)
	unknown            bool // the direction is unknown (not right, and not wrong either)
	forward            bool // the fault is a forward one (suspect counts)
	// ret: a return fault traced back (two-ended); retSuspect: its first
	// suspect is where the oracle loses the answers.
	ret, retSuspect bool
}

func (r caseResult) String() string {
	return fmt.Sprintf("direction %v suspect %v", r.direction, (r.suspect || !r.forward) && (r.retSuspect || !r.ret))
}

func runCase(t *testing.T, name string, c accuracyCase) caseResult {
	t.Helper()
	var res caseResult
	t.Run(name, func(t *testing.T) {
		// ECMPSCAN_ACCURACY_RESPONDER=1 measures the two-ended diagnosis:
		// the same fabrics, traced with a responder at the server.
		twoEnded := os.Getenv("ECMPSCAN_ACCURACY_RESPONDER") == "1"
		args := c.args
		if twoEnded {
			args = append(slices.Clone(args), "--responder", "7003")
		}
		f := fabric(t, name, args...)
		dst := server4
		if c.v6 {
			dst = server6
		}
		var extra []string
		if twoEnded {
			extra = []string{"--responder", netip.AddrPortFrom(dst.Addr(), 7003).String(), "--token-file", lab.TokenPath(name)}
		}
		doc, _ := trace(t, f, dst, fmt.Sprintf("%d-%d", c.first, c.first+c.ports-1), extra...)
		t.Log(describe(doc))
		fails, _, _ := oracle(t, f, dst, portRange(c.first, c.ports))
		want := c.want
		if len(fails) == 0 {
			want = "none" // no traced flow crosses the fault
		}
		res.direction = doc.Diagnosis.Direction == want
		res.unknown = doc.Diagnosis.Direction == "unknown" && want != "unknown"
		if dir := os.Getenv("ECMPSCAN_RECORD"); dir != "" {
			record(t, dir, f, c, want, doc)
		}
		res.forward = want == "forward"
		if res.forward && len(doc.Diagnosis.Suspects) > 0 {
			res.suspect = forwardSuspectOK(f, doc.Diagnosis.Suspects[0], c.at, c.before)
		}
		// Two-ended, a return fault is traced back: its suspect is
		// checked against the oracle's return paths.
		if twoEnded && want == "return" {
			res.ret = true
			if len(doc.Diagnosis.Suspects) > 0 {
				why := checkReturnSuspect(t, f, dst, doc)
				res.retSuspect = why == ""
				if why != "" {
					t.Log(why)
				}
			}
		}
	})
	return res
}

type accuracy struct{ fabrics, direction, unknown, forward, suspect, ret, retSuspect int }

func (a *accuracy) add(r caseResult) {
	a.fabrics++
	if r.direction {
		a.direction++
	}
	if r.unknown {
		a.unknown++
	}
	if r.forward {
		a.forward++
		if r.suspect {
			a.suspect++
		}
	}
	if r.ret {
		a.ret++
		if r.retSuspect {
			a.retSuspect++
		}
	}
}

// accuracyTable tallies by key, whose fields are the columns cols.
func accuracyTable(tally map[string]*accuracy, cols ...string) string {
	keys := make([]string, 0, len(tally))
	for k := range tally {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("| " + strings.Join(cols, " | ") + " | fabrics | direction right | unknown | top suspect right (forward faults) | top suspect right (return faults, two-ended) |\n" +
		strings.Repeat("|---", len(cols)+5) + "|\n")
	var total accuracy
	for _, k := range keys {
		a := tally[k]
		fmt.Fprintf(&b, "| %s | %d | %s | %d | %s | %s |\n", strings.Join(strings.Fields(k), " | "), a.fabrics,
			ratio(a.direction, a.fabrics), a.unknown, ratio(a.suspect, a.forward), ratio(a.retSuspect, a.ret))
		total.fabrics += a.fabrics
		total.direction += a.direction
		total.unknown += a.unknown
		total.forward += a.forward
		total.suspect += a.suspect
		total.ret += a.ret
		total.retSuspect += a.retSuspect
	}
	fmt.Fprintf(&b, "| all |%s %d | %s | %d | %s | %s |\n", strings.Repeat(" |", len(cols)-1), total.fabrics, ratio(total.direction, total.fabrics),
		total.unknown, ratio(total.suspect, total.forward), ratio(total.retSuspect, total.ret))
	return b.String()
}

func ratio(k, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", k, n)
}

// recorded is a traced fabric kept for the diagnosis's offline tests
// (report/testdata/recorded, report.TestRecordedTraces): the trace's
// evidence, what the kernel's oracle says is wrong, and the lab node of
// every address in it, so a suspect can be checked without the lab.
type recorded struct {
	Fabric string            `json:"fabric"`
	Want   string            `json:"want"`
	At     string            `json:"at,omitempty"`
	Before string            `json:"before,omitempty"`
	Nodes  map[string]string `json:"nodes"`
	Trace  map[string]any    `json:"trace"`
}

// record writes the case to DIR/NAME.json.gz (ECMPSCAN_RECORD=DIR), ready
// to copy into report/testdata/recorded.
func record(t *testing.T, dir string, f *lab.Fabric, c accuracyCase, want string, doc traceDoc) {
	r := recorded{Fabric: strings.Join(c.args, " "), Want: want, At: c.at, Before: c.before, Nodes: map[string]string{}}
	if c.v6 {
		r.Fabric += " (IPv6)"
	}
	if err := json.Unmarshal(doc.Raw, &r.Trace); err != nil {
		t.Log(err)
		return
	}
	evidenceOnly(r.Trace)
	// The gateways are named even when no probe saw them.
	gateways := []*string{doc.Gateway}
	if doc.Responder != nil {
		gateways = append(gateways, doc.Responder.Gateway)
	}
	for _, gw := range gateways {
		if n := node(f, gw); n != "" {
			r.Nodes[*gw] = n
		}
	}
	for _, fl := range doc.Flows {
		for _, h := range fl.Hops {
			if n := node(f, h.Addr); n != "" {
				r.Nodes[*h.Addr] = n
			}
			for _, id := range h.IPIDs {
				if n := node(f, &id.Addr); n != "" {
					r.Nodes[id.Addr] = n
				}
			}
		}
		for _, h := range fl.ReturnHops {
			if n := node(f, h.Addr); n != "" {
				r.Nodes[*h.Addr] = n
			}
		}
	}
	name := strings.NewReplacer("--width2 ", "x", "--width ", "w", "--seed ", "-s", "--icmp-source ", "-",
		"--icmp-path ", "-", "--fault ", "-", "--ipid ", "-ipid-", "--routes ", "-routes-", "--ip-options ", "-ipopt-", "--icmp-ratelimit ", "-ratelimit", "@", "-", " ", "").Replace(strings.Join(c.args, " "))
	if c.v6 {
		name += "-v6"
	}
	data, err := json.Marshal(r)
	if err == nil {
		var buf bytes.Buffer
		z, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = z.Write(data)
		_ = z.Close()
		err = os.WriteFile(filepath.Join(dir, name+".json.gz"), buf.Bytes(), 0o644)
	}
	if err != nil {
		t.Log(err)
	}
}

// evidenceOnly strips a trace document to what the diagnosis reads: the
// diagnosis itself is recomputed, and timings do not matter.
func evidenceOnly(doc map[string]any) {
	for _, k := range []string{"buckets", "diagnosis", "started", "duration_ms"} {
		delete(doc, k)
	}
	flows, _ := doc["flows"].([]any)
	for _, fl := range flows {
		m, _ := fl.(map[string]any)
		delete(m, "signature")
		for _, key := range []string{"hops", "return_hops"} {
			hops, _ := m[key].([]any)
			for _, h := range hops {
				if hm, ok := h.(map[string]any); ok {
					delete(hm, "rtt_ms")
				}
			}
		}
	}
}
