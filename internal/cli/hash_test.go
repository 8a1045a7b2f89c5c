package cli

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// writeSweep writes a minimal sweep document where the ports that bad()
// picks fail.
func writeSweep(t *testing.T, ports []uint16, bad func(uint16) bool) string {
	t.Helper()
	type port struct {
		Sport uint16 `json:"sport"`
		State string `json:"state"`
	}
	doc := map[string]any{"schema_version": 1, "source": "198.18.1.1", "target": map[string]any{"addr": "198.18.2.2", "port": 3306}}
	var ps []port
	for _, p := range ports {
		st := "ok"
		if bad(p) {
			st = "fail"
		}
		ps = append(ps, port{p, st})
	}
	doc["ports"] = ps
	b, _ := json.Marshal(doc)
	path := filepath.Join(t.TempDir(), "sweep.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHashFitFindsTheModelThatMadeTheData(t *testing.T) {
	ports, _ := parsePorts("30000-30127")
	model, _ := hash.ModelByName("crc32")
	mapping, _ := hash.MappingByName("hash-threshold")
	src, dst := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.2.2")
	bucket := func(sp uint16) int {
		return hash.BucketOf(model, mapping, hash.FiveTuple{Src: src, Dst: dst, Proto: hash.ProtoTCP, SrcPort: sp, DstPort: 3306}, 8)
	}
	path := writeSweep(t, ports, func(sp uint16) bool { return bucket(sp) == 5 })

	s, out, errb := testStreams()
	if code := Execute(context.Background(), []string{"hash", "--fit", path, "--format", "json", "--predict", "31000-31063"}, s); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var doc struct {
		Fits []struct {
			Model, Mapping string
			N              int
			BadBuckets     []int `json:"bad_buckets"`
			Plausible      bool
		}
		Predicted []uint16 `json:"predicted_failing"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	// Several N (and xor16, on consecutive ports) can explain the same
	// data; the model that made it must be among the plausible fits.
	found := false
	for _, f := range doc.Fits {
		found = found || (f.Plausible && f.Model == "crc32" && f.Mapping == "hash-threshold" && f.N == 8 && slices.Equal(f.BadBuckets, []int{5}))
	}
	if !found || !doc.Fits[0].Plausible {
		t.Fatalf("crc32/hash-threshold N=8 bucket 5 not among the plausible fits: %+v", doc.Fits)
	}
	// Predictions for ports never swept are those all plausible fits agree
	// on, so they must follow the true model too.
	for _, p := range doc.Predicted {
		if bucket(p) != 5 {
			t.Errorf("port %d predicted to fail; the model puts it in bucket %d", p, bucket(p))
		}
	}
}

func TestHashFitSaysNoFitForRandomSplits(t *testing.T) {
	ports, _ := parsePorts("30000-30127")
	// A seeded hash, as on Linux: unrelated to every unseeded model.
	path := writeSweep(t, ports, func(sp uint16) bool { return (uint32(sp)*2654435761)>>29 == 3 })
	s, out, errb := testStreams()
	if code := Execute(context.Background(), []string{"hash", "--fit", path}, s); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "no hash model explains the split") || strings.Contains(out.String(), "predicted to fail") {
		t.Errorf("output %q: want a plain no-fit verdict and no prediction", out.String())
	}
}

func TestHashBadInput(t *testing.T) {
	for name, args := range map[string][]string{
		"no addresses":  {"hash"},
		"bad algo":      {"hash", "--src", "198.18.1.1", "--dst", "198.18.2.2", "--algo", "md5"},
		"bad mapping":   {"hash", "--src", "198.18.1.1", "--dst", "198.18.2.2", "--mapping", "rr"},
		"zero buckets":  {"hash", "--src", "198.18.1.1", "--dst", "198.18.2.2", "--buckets", "0"},
		"missing file":  {"hash", "--fit", "/nonexistent/sweep.json"},
		"bad max-n":     {"hash", "--fit", "x.json", "--max-n", "1"},
		"mixed family":  {"hash", "--src", "198.18.1.1", "--dst", "2001:db8::1"},
		"unknown proto": {"hash", "--src", "198.18.1.1", "--dst", "198.18.2.2", "--proto", "sctp"},
	} {
		s, _, errb := testStreams()
		if code := Execute(context.Background(), args, s); code != ExitUsage {
			t.Errorf("%s: exit %d, want %d (%s)", name, code, ExitUsage, errb.String())
		}
	}
}
