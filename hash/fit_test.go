package hash

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// fitSweep is p distinct random source ports (>= 1024) of a fixed flow.
func fitSweep(rng *rand.Rand, base FitInput, p int) FitInput {
	seen := map[uint16]bool{}
	for len(base.Ports) < p {
		sp := uint16(1024 + rng.IntN(65536-1024))
		if !seen[sp] {
			seen[sp] = true
			base.Ports = append(base.Ports, sp)
		}
	}
	base.Failing = map[uint16]bool{}
	return base
}

var fitBase4 = FitInput{
	Src: netip.MustParseAddr("192.0.2.10"), Dst: netip.MustParseAddr("198.51.100.20"),
	Proto: ProtoTCP, DstPort: 443,
}

// fitMark fails the ports hashed to the bad buckets and returns how many.
func fitMark(in FitInput, m Model, mp Mapping, n int, bad []int) int {
	f := 0
	for _, sp := range in.Ports {
		if slices.Contains(bad, BucketOf(m, mp, in.Tuple(sp), n)) {
			in.Failing[sp] = true
			f++
		}
	}
	return f
}

func fitFind(fits []Fit, model, mapping string, n int, bad []int) (int, bool) {
	for i, x := range fits {
		if x.Model == model && x.Mapping == mapping && x.N == n && slices.Equal(x.BadBuckets, bad) {
			return i, true
		}
	}
	return -1, false
}

// checkTrueFit asserts the generating hypothesis is found, plausible and
// ranked first (ties by bad-bucket count and N allowed).
func checkTrueFit(t *testing.T, fits []Fit, model, mapping string, n int, bad []int) Fit {
	t.Helper()
	i, ok := fitFind(fits, model, mapping, n, bad)
	if !ok {
		t.Errorf("%s/%s N=%d bad %v not among %d fits: %v", model, mapping, n, bad, len(fits), head(fits))
		return Fit{}
	}
	got := fits[i]
	if !got.Plausible {
		t.Errorf("%s/%s N=%d: true fit not plausible (p=%v)", model, mapping, n, got.PValue)
	}
	if got.Explained != got.Total {
		t.Errorf("%v: explained %d of %d", got, got.Explained, got.Total)
	}
	top := fits[0]
	if len(top.BadBuckets) != len(bad) || top.N != n {
		t.Errorf("%s/%s N=%d bad %v: ranked %d behind %v", model, mapping, n, bad, i, top)
	}
	return got
}

func head(fits []Fit) []Fit { return fits[:min(len(fits), 5)] }

// Data made with each model, mapping and N, one bad bucket: the fitter
// names the model that made it.
func TestFitFindsGeneratingModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(10, 11))
	tested := map[string]int{}
	for _, m := range Models() {
		for _, mp := range Mappings() {
			for _, n := range []int{2, 3, 5, 8, 13} {
				in := fitSweep(rng, fitBase4, 128+16*n)
				bad := []int{BucketOf(m, mp, in.Tuple(in.Ports[0]), n)}
				f := fitMark(in, m, mp, n, bad)
				if f < MinFitFailing || len(in.Ports)-f < MinFitFailing {
					// The model does not spread these ports over n next
					// hops (toeplitz-ip ignores ports; xor keeps them out
					// of the top and bottom bits): nothing to find.
					if fits := FitModels(in, 16); len(fits) != 0 {
						t.Errorf("%s/%s N=%d: all ports in one bucket, yet fits %v", m.Name(), mp.Name(), n, head(fits))
					}
					continue
				}
				tested[m.Name()+"/"+mp.Name()]++
				t.Run(fmt.Sprintf("%s/%s/%d", m.Name(), mp.Name(), n), func(t *testing.T) {
					checkTrueFit(t, FitModels(in, 16), m.Name(), mp.Name(), n, bad)
				})
			}
		}
	}
	for _, m := range Models() {
		for _, mp := range Mappings() {
			key := m.Name() + "/" + mp.Name()
			degenerate := m.Name() == "toeplitz-ip" || key == "xor/hash-threshold"
			if !degenerate && tested[key] < 3 {
				t.Errorf("%s: only %d of 5 next-hop counts spread the ports", key, tested[key])
			}
			if degenerate && tested[key] != 0 {
				t.Errorf("%s: expected to ignore source ports, yet spread them", key)
			}
		}
	}
}

// Two bad buckets that no smaller group explains.
func TestFitTwoBadBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	cases := []struct {
		model, mapping string
		n              int
		bad            []int
	}{
		{"crc32", "hash-threshold", 8, []int{1, 5}},
		{"crc16-ccitt", "modulo", 6, []int{0, 4}},
		{"toeplitz", "hash-threshold", 10, []int{2, 7}},
		{"crc32c", "modulo", 7, []int{3, 6}},
	}
	for _, c := range cases {
		m, _ := ModelByName(c.model)
		mp, _ := MappingByName(c.mapping)
		in := fitSweep(rng, fitBase4, 256)
		fitMark(in, m, mp, c.n, c.bad)
		checkTrueFit(t, FitModels(in, 32), c.model, c.mapping, c.n, c.bad)
	}
}

// IPv6 and ICMP (echo identifier as the source port) fit the same way.
func TestFitIPv6AndICMP(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	bases := map[string]FitInput{
		"v6":     {Src: netip.MustParseAddr("2001:db8::10"), Dst: netip.MustParseAddr("2001:db8:1::20"), Proto: ProtoTCP, DstPort: 22},
		"icmp4":  {Src: fitBase4.Src, Dst: fitBase4.Dst, Proto: ProtoICMP},
		"icmpv6": {Src: netip.MustParseAddr("2001:db8::10"), Dst: netip.MustParseAddr("2001:db8:1::20"), Proto: ProtoICMPv6},
	}
	for name, base := range bases {
		for _, model := range []string{"toeplitz", "crc32", "crc16-ccitt"} {
			m, _ := ModelByName(model)
			in := fitSweep(rng, base, 160)
			bad := []int{BucketOf(m, HashThreshold{}, in.Tuple(in.Ports[0]), 4)}
			fitMark(in, m, HashThreshold{}, 4, bad)
			t.Run(name+"/"+model, func(t *testing.T) {
				checkTrueFit(t, FitModels(in, 16), model, "hash-threshold", 4, bad)
			})
		}
	}
}

// Random failing sets: sometimes some hypothesis fits exactly, never
// plausibly.
func TestFitRandomFailuresAreNotPlausible(t *testing.T) {
	rng := rand.New(rand.NewPCG(16, 17))
	found := 0
	for _, p := range []int{32, 64, 128} {
		for _, f := range []int{2, 3, 5, 12, p / 2, p - 3, p - 2} {
			for range 4 {
				in := fitSweep(rng, fitBase4, p)
				for _, i := range rng.Perm(p)[:f] {
					in.Failing[in.Ports[i]] = true
				}
				fits := FitModels(in, 64)
				found += len(fits)
				for _, x := range fits {
					if x.Plausible {
						t.Errorf("%d ports, %d failing at random: plausible %v", p, f, x)
					}
				}
				if s := FitSummary(fits); !strings.HasPrefix(s, "no hash model explains the split") {
					t.Errorf("summary of random failures: %s", s)
				}
			}
		}
	}
	if found == 0 {
		t.Error("no exact fit of random failures at all: the guard was not exercised")
	}
	t.Logf("%d exact fits of random failures, none plausible", found)
}

// Few ports: a real bad bucket of 16 among 40 ports fails 2 to 4 ports.
// Random pairs match that as well, so most such fits are not plausible;
// those that are (a bucket of a smaller N happens to hold just those ports)
// name the model that made the data.
func TestFitFewPorts(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 19))
	m, _ := ModelByName("crc32")
	weak, strong := 0, 0
	for range 20 {
		in := fitSweep(rng, fitBase4, 40)
		var bad []int
		for b := range 16 { // the first bucket that fails 2 to 4 ports
			in.Failing = map[uint16]bool{}
			if f := fitMark(in, m, HashThreshold{}, 16, []int{b}); f >= 2 && f <= 4 {
				bad = []int{b}
				break
			}
		}
		if bad == nil {
			continue
		}
		fits := FitModels(in, 64)
		if _, ok := fitFind(fits, "crc32", "hash-threshold", 16, bad); !ok {
			t.Errorf("true fit missing among %v", head(fits))
		}
		if len(fits) == 0 || !fits[0].Plausible {
			weak++
			continue
		}
		strong++
		for _, x := range fits {
			if x.Plausible && (x.Model != "crc32" || x.Mapping != "hash-threshold") {
				t.Errorf("%d of 40 ports failing: plausible wrong model %v", x.Failing, x)
			}
		}
	}
	if weak == 0 {
		t.Error("every sample of 2 to 4 failing among 40 ports was plausible")
	}
	t.Logf("%d implausible, %d plausible (true model)", weak, strong)
}

// A bad member of two among the minimum number of ports is plain to see.
func TestFitMinimumPortsHalfFailing(t *testing.T) {
	rng := rand.New(rand.NewPCG(20, 21))
	m, _ := ModelByName("crc16-ccitt")
	for range 5 {
		in := fitSweep(rng, fitBase4, MinFitPorts)
		f := fitMark(in, m, Modulo{}, 2, []int{1})
		if f < 8 || f > 24 {
			continue
		}
		checkTrueFit(t, FitModels(in, 64), "crc16-ccitt", "modulo", 2, []int{1})
	}
}

func TestFitEdgeCases(t *testing.T) {
	rng := rand.New(rand.NewPCG(22, 23))
	m, _ := ModelByName("crc32")
	in := fitSweep(rng, fitBase4, 128)
	if FitModels(in, 64) != nil {
		t.Error("no failing ports, yet fits")
	}
	for _, sp := range in.Ports {
		in.Failing[sp] = true
	}
	if FitModels(in, 64) != nil {
		t.Error("all ports failing, yet fits")
	}

	in.Failing = map[uint16]bool{}
	fitMark(in, m, Modulo{}, 2, []int{0})
	if FitModels(in, 1) != nil {
		t.Error("maxN 1, yet fits")
	}
	if len(FitModels(in, 64)) == 0 {
		t.Fatal("a clean split does not fit")
	}
	few := in
	few.Ports = in.Ports[:MinFitPorts-1]
	if FitModels(few, 64) != nil {
		t.Errorf("%d ports, yet fits", len(few.Ports))
	}

	one := fitSweep(rng, fitBase4, 128)
	one.Failing[one.Ports[7]] = true
	if FitModels(one, 64) != nil {
		t.Error("one failing port, yet fits")
	}
	for _, sp := range one.Ports[1:] {
		one.Failing[sp] = true
	}
	one.Failing[one.Ports[7]] = true
	delete(one.Failing, one.Ports[0])
	if FitModels(one, 64) != nil {
		t.Error("one working port, yet fits")
	}
}

// Duplicate ports count once; failing ports that were not probed are
// ignored; the order of ports does not matter.
func TestFitInputNormalised(t *testing.T) {
	rng := rand.New(rand.NewPCG(24, 25))
	m, _ := ModelByName("toeplitz")
	in := fitSweep(rng, fitBase4, 100)
	fitMark(in, m, HashThreshold{}, 3, []int{1})
	want := FitModels(in, 16)
	noisy := in
	noisy.Ports = append(slices.Clone(in.Ports), in.Ports[:30]...)
	slices.Reverse(noisy.Ports)
	noisy.Failing = map[uint16]bool{}
	for sp := range in.Failing {
		noisy.Failing[sp] = true
	}
	for sp := uint16(1); sp < 1024; sp++ { // never probed
		noisy.Failing[sp] = true
	}
	got := FitModels(noisy, 16)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("noisy input fits\n%v\nwant\n%v", head(got), head(want))
	}
	if got[0].Total != 100 {
		t.Errorf("Total %d, want 100", got[0].Total)
	}
}

func TestFitDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(26, 27))
	in := fitSweep(rng, fitBase4, 64)
	for _, i := range rng.Perm(64)[:3] {
		in.Failing[in.Ports[i]] = true
	}
	a, b := FitModels(in, 64), FitModels(in, 64)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Error("two runs differ")
	}
}

func TestPredict(t *testing.T) {
	rng := rand.New(rand.NewPCG(28, 29))
	m, _ := ModelByName("crc32c")
	in := fitSweep(rng, fitBase4, 200)
	fitMark(in, m, HashThreshold{}, 5, []int{3})
	fits := FitModels(in, 16)
	fit := checkTrueFit(t, fits, "crc32c", "hash-threshold", 5, []int{3})

	var others, want []uint16
	for sp := uint16(20000); sp < 21000; sp++ {
		others = append(others, sp)
		if BucketOf(m, HashThreshold{}, in.Tuple(sp), 5) == 3 {
			want = append(want, sp)
		}
	}
	if got := Predict(fit, in, others); !slices.Equal(got, want) {
		t.Errorf("Predict: %d ports, want %d", len(got), len(want))
	}
	if got := Predict(fit, in, in.Ports); len(got) != len(in.Failing) {
		t.Errorf("Predict over the sweep: %d ports, %d failed", len(got), len(in.Failing))
	}
	if Predict(Fit{Model: "nope", Mapping: "modulo", N: 2}, in, others) != nil {
		t.Error("unknown model predicts")
	}
	if Predict(Fit{Model: "crc32", Mapping: "nope", N: 2}, in, others) != nil {
		t.Error("unknown mapping predicts")
	}
}

func TestFitSummary(t *testing.T) {
	const none = "no hash model explains the split (seeded hashes, as in Linux and most ASICs, cannot be predicted)"
	if got := FitSummary(nil); got != none {
		t.Errorf("FitSummary(nil) = %q", got)
	}
	rng := rand.New(rand.NewPCG(30, 31))
	m, _ := ModelByName("crc32")
	in := fitSweep(rng, fitBase4, 256)
	fitMark(in, m, HashThreshold{}, 4, []int{2})
	s := FitSummary(FitModels(in, 64))
	if !strings.HasPrefix(s, "ports in bucket 2 (0-based) of 4 under crc32/hash-threshold fail") {
		t.Errorf("summary: %s", s)
	}
	t.Log(s)
	weak := []Fit{{Model: "crc32", Mapping: "modulo", N: 40, BadBuckets: []int{3}, Explained: 40, Total: 40, Failing: 2, PValue: 0.6}}
	if s := FitSummary(weak); !strings.HasPrefix(s, none+"; 1 exact fit is no better than chance") {
		t.Errorf("weak summary: %s", s)
	}
}

func benchFitInput(p int) FitInput {
	rng := rand.New(rand.NewPCG(32, 33))
	m, _ := ModelByName("toeplitz")
	in := fitSweep(rng, fitBase4, p)
	fitMark(in, m, HashThreshold{}, 16, []int{9})
	return in
}

func BenchmarkFitModels(b *testing.B) {
	in := benchFitInput(256)
	for b.Loop() {
		FitModels(in, 64)
	}
}

func BenchmarkFitModels1024(b *testing.B) {
	in := benchFitInput(1024)
	for b.Loop() {
		FitModels(in, 64)
	}
}

// The worst case for the relabelling: a split many hypotheses explain.
func BenchmarkFitModelsHalf1024(b *testing.B) {
	rng := rand.New(rand.NewPCG(34, 35))
	m, _ := ModelByName("crc32")
	in := fitSweep(rng, fitBase4, 1024)
	fitMark(in, m, Modulo{}, 2, []int{1})
	for b.Loop() {
		FitModels(in, 64)
	}
}
