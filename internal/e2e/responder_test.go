package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/lab"
	"github.com/ecmpscan/ecmpscan/internal/schematest"
)

// responderProc is `ecmpscan responder` running in a fabric's server
// namespace.
type responderProc struct {
	*proc
	addr  string
	token string // the token file
}

// startResponder starts a responder on the server's address and waits for
// it to say it listens; it is stopped when the test ends.
func startResponder(t *testing.T, f *lab.Fabric, extra ...string) *responderProc {
	t.Helper()
	dir := t.TempDir()
	r := &responderProc{addr: netip.AddrPortFrom(f.Server4, 7000).String(), token: filepath.Join(dir, "token")}
	if out, err := exec.Command(binary, "responder", "--new-token", r.token).CombinedOutput(); err != nil {
		t.Fatalf("new token: %v\n%s", err, out)
	}
	r.proc = startIn(t, f.ServerNS(), "listening on", binary, append([]string{"responder",
		"--listen", r.addr, "--token-file", r.token}, extra...)...)
	return r
}

// twoEndedDoc is the part of a two-ended sweep document the tests check.
type twoEndedDoc struct {
	Ports []struct {
		Sport   uint16 `json:"sport"`
		State   string `json:"state"`
		Arrived *int   `json:"arrived"`
	} `json:"ports"`
	Summary struct {
		Verdict   string `json:"verdict"`
		Direction *struct {
			Kind    string `json:"kind"`
			Forward int    `json:"forward"`
			Return  int    `json:"return"`
		} `json:"direction"`
		Responder *struct {
			Retries int    `json:"retries"`
			ByProbe bool   `json:"by_probe"`
			Foreign int    `json:"foreign"`
			Error   string `json:"error"`
		} `json:"responder"`
	} `json:"summary"`
}

func sweepTwoEnded(t *testing.T, f *lab.Fabric, r *responderProc, token string, sports string) (twoEndedDoc, string, int) {
	t.Helper()
	out, stderr, code := run(t, f, nil, "sweep", netip.AddrPortFrom(f.Server4, 3306).String(), "--format", "json",
		"--sport", sports, "--rate", "2000", "--responder", r.addr, "--token-file", token)
	var doc twoEndedDoc
	if code == 0 || code == 1 || code == 4 {
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("exit %d, not JSON: %v\n%s\n%s", code, err, out, stderr)
		}
		if err := schematest.Validate(schematest.Sweep, []byte(out)); err != nil {
			t.Errorf("the document breaks its schema: %v", err)
		}
	}
	return doc, stderr, code
}

// TestSweepResponderDirection: with a responder at the server, every
// failing port's direction is the kernel's: its SYNs arrive exactly when
// the oracle's forward path reaches the server.
func TestSweepResponderDirection(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"rs1", []string{"--width", "4", "--seed", "6", "--fault", "blackhole-fwd@p2"}, "forward"},
		{"rs2", []string{"--width", "4", "--seed", "6", "--fault", "blackhole-ret@p3"}, "return"},
		{"rs3", []string{"--width", "2", "--width2", "2", "--seed", "12", "--fault", "drop-synack@q1"}, "return"},
		{"rs4", []string{"--width", "3", "--width2", "3", "--seed", "21", "--fault", "link-drop@p1-q2"}, "both"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := fabric(t, c.name, c.args...)
			r := startResponder(t, f)
			const first, n = 30000, 64
			doc, stderr, code := sweepTwoEnded(t, f, r, r.token, fmt.Sprintf("%d-%d", first, first+n-1))
			if code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, stderr)
			}
			d := doc.Summary.Direction
			if d == nil || d.Kind != c.want {
				t.Fatalf("direction %+v, want %s; verdict %s", d, c.want, doc.Summary.Verdict)
			}
			// Raw mode: every SYN the responder saw decodes into one of
			// this sweep's probes.
			if rs := doc.Summary.Responder; rs == nil || !rs.ByProbe || rs.Foreign != 0 {
				t.Errorf("responder summary %+v: want arrivals by probe, none foreign", rs)
			}
			// Port by port against the kernel: a failing flow's SYN
			// reaches the server iff the oracle's path gets there.
			var tuples []hash.FiveTuple
			for _, p := range doc.Ports {
				tuples = append(tuples, hash.FiveTuple{Src: f.Client4, Dst: f.Server4, Proto: hash.ProtoTCP, SrcPort: p.Sport, DstPort: 3306})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			exps, err := f.ExpectAll(ctx, tuples)
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range doc.Ports {
				if p.Arrived == nil {
					t.Fatalf("port %d has no arrived count", p.Sport)
				}
				reaches := len(exps[i].Return) > 0 || exps[i].Verdict != lab.Fails
				if (*p.Arrived > 0) != reaches {
					t.Errorf("port %d (%s): %d SYNs arrived, oracle says the server is reached: %v (forward %v)",
						p.Sport, p.State, *p.Arrived, reaches, exps[i].ForwardNodes())
				}
			}
			if !strings.Contains(doc.Summary.Verdict, map[string]string{"forward": "on the way there", "return": "on the way back", "both": "on the way back"}[c.want]) {
				t.Errorf("verdict %q", doc.Summary.Verdict)
			}
		})
	}
}

// TestResponderRefuses: a wrong token, a peer outside --allow: the sweep
// stops before any probe with exit 3, and the responder logs the refusal.
func TestResponderRefuses(t *testing.T) {
	f := fabric(t, "rs5", "--width", "2", "--seed", "3")
	r := startResponder(t, f, "--allow", "198.18.1.0/24")
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte(strings.Repeat("w", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := sweepTwoEnded(t, f, r, wrong, "30000-30007")
	if code != 3 || !strings.Contains(stderr, "without an answer") {
		t.Errorf("wrong token: exit %d, %s", code, stderr)
	}
	if !r.logged("not authenticated") {
		t.Errorf("no refusal logged: %q", r.text())
	}
	// The right token from the client's address passes.
	doc, stderr, code := sweepTwoEnded(t, f, r, r.token, "30000-30007")
	if code != 0 || doc.Summary.Direction == nil || doc.Summary.Direction.Kind != "none" {
		t.Errorf("healthy two-ended sweep: exit %d, %+v\n%s", code, doc.Summary.Direction, stderr)
	}
	// A token that is too short never leaves the client.
	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := sweepTwoEnded(t, f, r, short, "30000-30007"); code != 2 || !strings.Contains(stderr, "at least 32") {
		t.Errorf("short token: exit %d, %s", code, stderr)
	}
}

// TestLabResponder: `lab up --responder` runs a responder in the server
// namespace, on both families; IPv6 SYNs are seen with their hop limit.
func TestLabResponder(t *testing.T) {
	f := fabric(t, "rs6", "--width", "4", "--seed", "6", "--fault", "blackhole-ret@p3", "--responder", "7001")
	for _, dst := range []netip.AddrPort{netip.AddrPortFrom(f.Server4, 3306), netip.AddrPortFrom(f.Server6, 3306)} {
		out, stderr, code := run(t, f, nil, "sweep", dst.String(), "--format", "json", "--sport", "30000-30063", "--rate", "2000",
			"--responder", netip.AddrPortFrom(dst.Addr(), 7001).String(), "--token-file", lab.TokenPath("rs6"))
		var doc twoEndedDoc
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: exit %d, not JSON: %v\n%s", dst, code, err, stderr)
		}
		if d := doc.Summary.Direction; code != 1 || d == nil || d.Kind != "return" || d.Return == 0 {
			t.Errorf("%s: exit %d, direction %+v: %s", dst, code, d, doc.Summary.Verdict)
		}
	}
}

// TestTraceResponder: a return blackhole on plain Linux routers that one
// end cannot decide (TestTraceReturnBlackhole's tr4l) is decided with a
// responder: every failing flow's SYNs arrived. A forward one stays forward.
// TestTraceResponder: with a responder at the server, the trace's direction
// comes from the two-ended evidence, and for a return fault the responder
// traces the failing flows back: suspects[0] must be the return hop or link
// where the kernel's own return path (the oracle) loses them.
func TestTraceResponder(t *testing.T) {
	// The lab's routers rate-limit their errors toward the responder too,
	// as Linux does: the responder must have probed some return paths'
	// hops again, and said so.
	retried, ran := 0, 0
	defer func() {
		// (Only when some case ran: they skip without root or with -short.)
		if !t.Failed() && ran > 0 && retried == 0 {
			t.Error("no return-path trace says the responder probed rate-limited hops again")
		}
	}()
	for _, c := range []struct {
		name, fault, want string
		args              []string
	}{
		{"rs7", "blackhole-ret@q1", "return", []string{"--width", "3", "--width2", "3", "--seed", "12"}},
		{"rs8", "blackhole-fwd@q2", "forward", []string{"--width", "3", "--width2", "3", "--seed", "12"}},
		{"rs9", "drop-synack@p2", "return", []string{"--width", "4", "--seed", "5", "--icmp-path", "fixed"}},
		{"rs10", "blackhole-ret@p3", "return", []string{"--width", "4", "--seed", "6", "--icmp-source", "router-id"}},
		{"rs11", "drop-synack@q2", "return", []string{"--width", "2", "--width2", "3", "--seed", "8", "--icmp-path", "fixed", "--icmp-source", "inbound"}},
		{"rs12", "link-oneway@q2-p1", "return", []string{"--width", "3", "--width2", "3", "--seed", "9"}},
		{"rs13", "link-oneway@r2-p2", "return", []string{"--width", "3", "--seed", "10", "--icmp-path", "fixed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := fabric(t, c.name, append(c.args, "--fault", c.fault, "--responder", "7002")...)
			ran++
			doc, _ := trace(t, f, server4, "30000-30047", "--responder", netip.AddrPortFrom(f.Server4, 7002).String(),
				"--token-file", lab.TokenPath(c.name))
			t.Log(describe(doc))
			if rp := doc.Diagnosis.ReturnPaths; rp != nil && rp.Retried != nil && rp.Retried.Rounds > 0 {
				retried++
			}
			if doc.Diagnosis.Direction != c.want || !strings.Contains(doc.Diagnosis.Text, "two-ended") {
				t.Errorf("want %s from two-ended evidence; got %s", c.want, describe(doc))
			}
			if len(doc.Diagnosis.Suspects) == 0 || doc.Diagnosis.Suspects[0].Direction != c.want {
				t.Fatalf("suspects[0] should be %s: %s", c.want, describe(doc))
			}
			if c.want == "return" {
				if why := checkReturnSuspect(t, f, server4, doc); why != "" {
					t.Error(why)
				}
			}
		})
	}
}

// checkReturnSuspect compares suspects[0] of a two-ended trace with the
// oracle's return paths of the flows that fail although their SYNs
// arrived: it must name the router that loses them, the router before it
// on the way back (when the bad one never answers), or the link between
// them. It returns why not, or "".
func checkReturnSuspect(t *testing.T, f *lab.Fabric, dst netip.AddrPort, doc traceDoc) string {
	t.Helper()
	src := f.Client4
	if dst.Addr().Is6() {
		src = f.Client6
	}
	// The flows traced back: every failing one whose SYNs arrived, up to
	// the 32 the trace asks for.
	var tuples []hash.FiveTuple
	arrived := 0
	for _, fl := range doc.Flows {
		if fl.State == "fail" && fl.Arrived != nil && *fl.Arrived > 0 {
			arrived++
			if len(fl.ReturnHops) > 0 {
				tuples = append(tuples, hash.FiveTuple{Src: src, Dst: dst.Addr(), Proto: hash.ProtoTCP, SrcPort: fl.Sport, DstPort: dst.Port()})
			}
		}
	}
	if len(tuples) < min(arrived, 32) || len(tuples) == 0 {
		return fmt.Sprintf("%d of %d failing flows whose SYNs arrived were traced back", len(tuples), arrived)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exps, err := f.ExpectAll(ctx, tuples)
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	// Where the kernel loses each answer: the last router of its return
	// path, the one before it, and the router its dead link leads to.
	ok := map[string]bool{}
	for i, e := range exps {
		n := len(e.Return)
		if e.Verdict != lab.Fails || n == 0 {
			return fmt.Sprintf("oracle: flow %d does not fail on the way back (%s)", tuples[i].SrcPort, e.Reason)
		}
		ok[e.Return[n-1].Node] = true
		if n > 1 {
			ok[e.Return[n-2].Node] = true
		}
		if out := e.Return[n-1].Out; out != "" {
			ok[strings.TrimPrefix(out, "to-")] = true
		}
	}
	s := doc.Diagnosis.Suspects[0]
	from, next := node(f, &s.Addr), node(f, s.Next)
	good := s.Direction == "return" && (ok[from] || ok[next])
	// An unseen hop is named by the routers before it: behind a first
	// return hop that answers nothing, the target's gateway.
	for _, b := range s.Behind {
		good = good || ok[node(f, &b)]
	}
	good = good || (s.Addr == "" && ok[node(f, s.FirstHop)])
	if !good {
		return fmt.Sprintf("suspects[0] = %s %s %s -> %s behind %v first hop %v; the oracle loses the answers at %v", s.Direction, s.Kind, from, next, s.Behind, s.FirstHop, ok)
	}
	return ""
}

// TestTraceSilentGateways: a fault right behind a gateway that sends no
// time-exceeded is named by that gateway, from the routing table of the
// end it is next to: the client's r1 on the way out, and, traced back by
// the responder, the server's r2 on the way back. Both are checked
// against the oracle. (No rate limit: this is about the silent gateways;
// the random draws give silent first hops rate limits too.)
func TestTraceSilentGateways(t *testing.T) {
	t.Run("sg1", func(t *testing.T) {
		f := fabric(t, "sg1", "--width", "3", "--seed", "5", "--fault", "blackhole-fwd@p2", "--fault", "silent@r1", "--icmp-ratelimit", "0")
		doc, _ := trace(t, f, server4, "30000-30047")
		t.Log(describe(doc))
		d := doc.Diagnosis
		if d.Direction != "forward" || len(d.Suspects) == 0 {
			t.Fatalf("want forward: %s", describe(doc))
		}
		if s := d.Suspects[0]; !forwardSuspectOK(f, s, "p2", "") || node(f, s.FirstHop) != "r1" {
			t.Errorf("suspects[0] = %s %s first hop %v; want behind the client's gateway r1", s.Kind, s.Addr, s.FirstHop)
		}
	})
	t.Run("sg2", func(t *testing.T) {
		f := fabric(t, "sg2", "--width", "3", "--width2", "2", "--seed", "9", "--fault", "blackhole-ret@q1", "--fault", "silent@r2",
			"--icmp-ratelimit", "0", "--responder", "7002")
		doc, _ := trace(t, f, server4, "30000-30063", "--responder", netip.AddrPortFrom(f.Server4, 7002).String(),
			"--token-file", lab.TokenPath("sg2"))
		t.Log(describe(doc))
		d := doc.Diagnosis
		if d.Direction != "return" || len(d.Suspects) == 0 {
			t.Fatalf("want return: %s", describe(doc))
		}
		if why := checkReturnSuspect(t, f, server4, doc); why != "" {
			t.Error(why)
		}
		if s := d.Suspects[0]; node(f, s.FirstHop) != "r2" || !strings.Contains(d.Text, "the target's gateway") {
			t.Errorf("suspects[0] = %s %s first hop %v; want behind the server's gateway r2: %s", s.Kind, s.Addr, s.FirstHop, d.Text)
		}
	})
}
