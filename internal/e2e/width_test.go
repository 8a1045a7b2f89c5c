package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// widthDoc is the part of the sweep JSON the width tests read.
type widthDoc struct {
	Ports   []struct{ Sport uint16 } `json:"ports"`
	Summary struct {
		Fail  int `json:"fail"`
		Width *struct {
			Low  int  `json:"low"`
			Best int  `json:"best"`
			High *int `json:"high"`
		} `json:"width_estimate"`
		Plan *struct {
			Ports   int    `json:"ports"`
			Rounds  int    `json:"rounds"`
			Stopped string `json:"stopped"`
		} `json:"plan"`
	} `json:"summary"`
}

// TestWidthEstimateBrackets: on fabrics of width 2, 8 and 16 with one bad
// member, summary.width_estimate brackets the true width. Width 16 uses a
// sweep planned for W=16 at 0.99, which must sweep at least 72 ports and
// catch the bad member.
func TestWidthEstimateBrackets(t *testing.T) {
	cases := []struct {
		width int
		args  []string
	}{
		{2, []string{"--sport", "30000-30063"}},
		{8, []string{"--sport", "30000-30255", "--rate", "4000"}},
		{16, []string{"--confidence", "0.99", "--max-width", "16", "--rate", "2000"}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("width-%d", c.width), func(t *testing.T) {
			f := fabric(t, fmt.Sprintf("tw%d", i), "--width", fmt.Sprint(c.width), "--seed", "14", "--fault", fmt.Sprintf("blackhole-fwd@p%d", c.width))
			out, stderr, code := run(t, f, nil, append([]string{"sweep", server4.String(), "--format", "json", "--icmp", "0"}, c.args...)...)
			var doc widthDoc
			if err := json.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("exit %d: %v\n%s\n%s", code, err, out, stderr)
			}
			w := doc.Summary.Width
			if doc.Summary.Fail == 0 || w == nil {
				t.Fatalf("no failing port or no width estimate (fail %d, exit %d)", doc.Summary.Fail, code)
			}
			high := "inf"
			if w.High != nil {
				high = fmt.Sprint(*w.High)
			}
			t.Logf("%d ports, %d fail: width %d..%s (best %d)", len(doc.Ports), doc.Summary.Fail, w.Low, high, w.Best)
			if w.Low > c.width || (w.High != nil && *w.High < c.width) {
				t.Errorf("width estimate %d..%s does not bracket the true width %d", w.Low, high, c.width)
			}
			if c.width == 8 {
				// Linux seeds its multipath hash: no unseeded model may claim
				// to explain the lab's split.
				path := filepath.Join(t.TempDir(), "sweep.json")
				if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				fit, err := exec.Command(binary, "hash", "--fit", path).CombinedOutput()
				if err != nil || !strings.Contains(string(fit), "no hash model explains the split") || strings.Contains(string(fit), "predicted to fail") {
					t.Errorf("hash --fit on the lab: %v\n%s", err, fit)
				}
			}
			if c.width == 16 {
				if doc.Summary.Plan == nil || len(doc.Ports) < 72 {
					t.Errorf("planned sweep probed %d ports (plan %+v); want at least 72", len(doc.Ports), doc.Summary.Plan)
				} else {
					t.Logf("plan: %d rounds, %s", doc.Summary.Plan.Rounds, doc.Summary.Plan.Stopped)
				}
			}
		})
	}
}
