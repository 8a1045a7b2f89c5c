package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/internal/lab"
)

// honestDoc is what the honesty tests read beyond sweepDoc.
type honestDoc struct {
	Summary struct {
		Kind         string   `json:"kind"`
		Verdict      string   `json:"verdict"`
		ExitCode     int      `json:"exit_code"`
		Error        int      `json:"error"`
		ErrorPorts   []uint16 `json:"error_ports"`
		SendFailures []struct {
			Cause string `json:"cause"`
			Count int    `json:"count"`
		} `json:"send_failures"`
	} `json:"summary"`
}

func honestSweep(t *testing.T, f *lab.Fabric, args ...string) (sweepDoc, honestDoc, int) {
	t.Helper()
	out, stderr, code := run(t, f, nil, append([]string{"sweep", "--format", "json"}, args...)...)
	var doc sweepDoc
	var h honestDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("sweep %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, out, stderr)
	}
	_ = json.Unmarshal([]byte(out), &h)
	return doc, h, code
}

// nftIn loads an nftables ruleset into a namespace of the fabric.
func nftIn(t *testing.T, ns, rules string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v\n%s", ns, err, out)
	}
}

// A local firewall that drops the probes on the way out makes every raw
// send fail with EPERM. Nothing about the path was measured: exit 3,
// cannot-probe, the firewall named. Then one that drops a few source ports
// only: those are error, and the rest still matches the oracle.
func TestSweepLocalFirewall(t *testing.T) {
	f := fabric(t, "tfw", "--width", "4", "--seed", "11", "--fault", "blackhole-fwd@p2")
	nftIn(t, f.ClientNS(), `table inet esl_fw {
	chain out { type filter hook output priority 0; tcp dport 3306 drop; }
}`)
	doc, h, code := honestSweep(t, f, server4.String(), "--sport", "30000-30015", "--rate", "2000")
	if code != 3 || h.Summary.Kind != "cannot-probe" || h.Summary.Error != 16 || !strings.Contains(h.Summary.Verdict, "firewall") {
		t.Errorf("exit %d kind %s error %d verdict %q; want 3, cannot-probe, 16 error ports, the firewall named",
			code, h.Summary.Kind, h.Summary.Error, h.Summary.Verdict)
	}
	for _, p := range doc.Ports {
		if p.State != "error" || p.Sent != 0 {
			t.Errorf("port %d: %s with %d sent; want error, nothing sent", p.Sport, p.State, p.Sent)
		}
	}
	if doc.ICMP.State != "ok" {
		t.Errorf("icmp %s; the firewall drops only TCP, echo must pass", doc.ICMP.State)
	}

	nftIn(t, f.ClientNS(), `flush table inet esl_fw
table inet esl_fw {
	chain out { type filter hook output priority 0; tcp sport 30000-30003 drop; }
}`)
	sports := portRange(30000, 64)
	doc, h, code = honestSweep(t, f, server4.String(), "--sport", "30000-30063", "--rate", "2000")
	if h.Summary.Error != 4 || fmt.Sprint(h.Summary.ErrorPorts) != "[30000 30001 30002 30003]" || h.Summary.SendFailures[0].Cause != "firewall" {
		t.Errorf("error ports %v failures %+v; want 30000-30003 blocked by the firewall", h.Summary.ErrorPorts, h.Summary.SendFailures)
	}
	fails, _, _ := oracle(t, f, server4, sports)
	states := doc.states()
	for _, sp := range sports[4:] {
		if (states[sp] == "fail") != fails[sp] {
			t.Errorf("port %d: %s, oracle fail=%v", sp, states[sp], fails[sp])
		}
	}
	if want := map[bool]int{true: 1, false: 0}[len(fails) > 0]; code != want {
		t.Errorf("exit %d, want %d: a few unprobed ports do not change the answer", code, want)
	}
}

// In connect mode a source port that is in use on the host cannot be
// bound: it is error (port in use), not path loss.
func TestConnectModePortInUse(t *testing.T) {
	f := fabric(t, "tinuse", "--width", "2", "--seed", "5")
	var l net.Listener
	err := lab.InNamespace(f.ClientNS(), func() error {
		var err error
		l, err = net.Listen("tcp4", netip.AddrPortFrom(f.Client4, 30005).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	doc, h, code := honestSweep(t, f, server4.String(), "--mode", "connect", "--sport", "30000-30015", "--rate", "1000")
	states := doc.states()
	if states[30005] != "error" || h.Summary.Error != 1 || len(h.Summary.SendFailures) == 0 || h.Summary.SendFailures[0].Cause != "port-in-use" {
		t.Errorf("port 30005 %s, error %d, failures %+v; want error, port-in-use", states[30005], h.Summary.Error, h.Summary.SendFailures)
	}
	if code != 0 || h.Summary.Kind != "healthy" {
		t.Errorf("exit %d kind %s: want the other ports healthy (%s)", code, h.Summary.Kind, h.Summary.Verdict)
	}
}

// A link-local IPv6 target with a zone works in raw mode: the client
// sweeps r1 by its fe80:: address on the link between them.
func TestSweepLinkLocalTarget(t *testing.T) {
	f := fabric(t, "tll", "--width", "2", "--seed", "7")
	out, err := exec.Command("ip", "netns", "exec", f.Namespace("r1"), "ip", "-6", "-o", "addr", "show", "dev", lab.IfName("c"), "scope", "link").Output()
	if err != nil {
		t.Fatalf("r1's link-local address: %v", err)
	}
	var ll string
	for _, field := range strings.Fields(string(out)) {
		if strings.HasPrefix(field, "fe80:") {
			ll, _, _ = strings.Cut(field, "/")
		}
	}
	if ll == "" {
		t.Fatalf("r1 has no link-local address on %s: %q", lab.IfName("c"), out)
	}
	target := fmt.Sprintf("[%s%%%s]:3306", ll, lab.IfName("r1"))
	doc, h, code := honestSweep(t, f, target, "--sport", "30000-30007", "--icmp", "2")
	// r1 has no listener: its kernel answers every SYN with a RST.
	if code != 0 || doc.Mode != "raw" || h.Summary.Kind != "healthy" || doc.ICMP.State != "ok" {
		t.Errorf("exit %d mode %s kind %s icmp %s (%s); want a healthy raw sweep of %s", code, doc.Mode, h.Summary.Kind, doc.ICMP.State, h.Summary.Verdict, target)
	}
}

// Run twice in a row, as a bash loop does: the server still holds the
// first run's half-open connections and answers the second run's SYNs with
// bare ACKs of the first run's. Those are all that get back on a path that
// drops SYN-ACKs; they must not make dead ports look flaky.
func TestSweepTwiceOnDropSynAck(t *testing.T) {
	f := fabric(t, "ttwice", "--width", "3", "--width2", "2", "--seed", "77", "--fault", "drop-synack@q2")
	sports := portRange(30000, 24)
	for run := 1; run <= 2; run++ {
		doc, code := sweep(t, f, nil, server4.String(), "--sport", "30000-30023", "--rate", "2000")
		t.Logf("run %d:", run)
		checkAgainstOracle(t, f, server4, sports, doc, code)
	}
}
