package hash

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Limits of the fitter and its guard against fits by chance.
const (
	// MinFitPorts is the fewest distinct probed ports FitModels fits.
	MinFitPorts = 32
	// MinFitFailing is the fewest failing ports (and the fewest working
	// ones, below which the split says nothing either) FitModels fits.
	MinFitFailing = 2
	// MaxFitN caps the number of next hops FitModels tries.
	MaxFitN = 512
	// FitRelabelings is how many random relabelings estimate a fit's
	// p-value.
	FitRelabelings = 1000
	// FitAlpha is the p-value at or below which a fit is plausible.
	FitAlpha = 0.01
)

// fitSeed seeds the relabelings: FitModels is deterministic.
const fitSeed = 0x6563_6d70_7363_616e // "ecmpscan"

// FitInput is a sweep to explain: the fixed parts of the tuple, the source
// ports probed (ICMP: echo identifiers, DstPort 0) and which of them
// failed. Duplicate ports count once; Failing entries for ports not in
// Ports are ignored.
type FitInput struct {
	Src, Dst netip.Addr
	Proto    uint8
	DstPort  uint16
	Ports    []uint16
	Failing  map[uint16]bool
}

// Tuple is the flow of source port sport.
func (in FitInput) Tuple(sport uint16) FiveTuple {
	return FiveTuple{Src: in.Src, Dst: in.Dst, Proto: in.Proto, SrcPort: sport, DstPort: in.DstPort}
}

// Fit is a hash model, mapping and next-hop count under which the failing
// ports are exactly those hashed to BadBuckets (0..N-1).
//
// PValue is the share of FitRelabelings random relabelings (the same
// number of failing ports chosen at random among the probed ones; the
// observed labelling counts as one) whose best fit over the whole search —
// any model, any mapping, any N up to maxN — ranks at or ahead of this
// one: fewer bad buckets, or as many with no more next hops. It is a
// permutation test that pays for every hypothesis tried. Plausible is
// PValue <= FitAlpha.
type Fit struct {
	Model, Mapping string
	N              int
	BadBuckets     []int
	Explained      int // ports whose state the fit predicts (all of them: fits are exact)
	Total          int // distinct ports probed
	Failing        int // failing ports among them
	PValue         float64
	Plausible      bool
}

func (f Fit) String() string {
	return fmt.Sprintf("%s/%s N=%d bad %s (%d/%d ports, %d failing, p=%s)",
		f.Model, f.Mapping, f.N, fitBucketList(f.BadBuckets), f.Explained, f.Total, f.Failing, fitFloat(f.PValue))
}

// fitHypothesis is one (model, mapping) pair with its bucket sizes for
// every N in 2..maxN.
type fitHypothesis struct {
	model    Model
	mapping  Mapping
	bits     int
	hashes   []uint32  // per port
	sizes    [][]int32 // sizes[n][b]: ports in bucket b of n (n >= 2)
	occupied []int     // occupied[n]: non-empty buckets
}

// FitModels searches every model x mapping x N in 2..maxN (capped at
// MaxFitN) for the ones under which the failing ports are exactly the
// ports of some buckets B: every bucket all failing or all ok, 1 <= |B| <=
// N/2. It returns these exact fits ordered by fewest bad buckets, smallest
// N, model and mapping name; the PValue never falls along that order, so
// the plausible fits come first. With fewer than MinFitPorts ports, fewer
// than MinFitFailing failing or working ports, it returns nil.
//
// Many hypotheses explain a small sample by chance, so each fit carries a
// permutation p-value (see Fit): only a fit that random labellings rarely
// match is Plausible. Cost: one hash per model and port, then models x
// mappings x maxN x ports for the search and, when anything fits, up to
// FitRelabelings x models x mappings x maxN checks, each of which stops at
// the first drawn port that shares a bucket with an undrawn one.
func FitModels(in FitInput, maxN int) []Fit {
	ports := slices.Clone(in.Ports)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	p := len(ports)
	fail := make([]bool, p)
	f := 0
	for i, sp := range ports {
		if in.Failing[sp] {
			fail[i] = true
			f++
		}
	}
	maxN = min(maxN, MaxFitN)
	if p < MinFitPorts || f < MinFitFailing || p-f < MinFitFailing || maxN < 2 {
		return nil
	}

	var hyps []*fitHypothesis
	for _, m := range builtinModels {
		hashes := make([]uint32, p)
		for i, sp := range ports {
			hashes[i] = m.Hash(in.Tuple(sp))
		}
		for _, mp := range builtinMappings {
			hyps = append(hyps, &fitHypothesis{model: m, mapping: mp, bits: m.Bits(), hashes: hashes})
		}
	}

	var fits []Fit
	fails := make([]int32, maxN)
	for _, h := range hyps {
		h.sizes = make([][]int32, maxN+1)
		h.occupied = make([]int, maxN+1)
		for n := 2; n <= maxN; n++ {
			size := make([]int32, n)
			clear(fails[:n])
			for i, x := range h.hashes {
				b := h.mapping.Bucket(x, h.bits, n)
				size[b]++
				if fail[i] {
					fails[b]++
				}
			}
			h.sizes[n] = size
			var bad []int
			mixed := false
			for b, s := range size {
				if s > 0 {
					h.occupied[n]++
				}
				switch fails[b] {
				case 0:
				case s:
					bad = append(bad, b)
				default:
					mixed = true
				}
			}
			if !mixed && len(bad) <= n/2 {
				fits = append(fits, Fit{
					Model: h.model.Name(), Mapping: h.mapping.Name(), N: n, BadBuckets: bad,
					Explained: p, Total: p, Failing: f,
				})
			}
		}
	}
	if len(fits) == 0 {
		return nil
	}

	slices.SortFunc(fits, func(a, b Fit) int {
		return cmp.Or(
			cmp.Compare(len(a.BadBuckets), len(b.BadBuckets)),
			cmp.Compare(a.N, b.N),
			cmp.Compare(a.Model, b.Model),
			cmp.Compare(a.Mapping, b.Mapping))
	})
	fitPValues(fits, hyps, maxN, p, f)
	return fits
}

// fitPValues fills PValue and Plausible by relabelling: draw the same
// number of failing ports at random, find the best-ranked hypothesis (any
// model and mapping, N up to maxN) that explains the draw, and count the
// draws whose best ranks at or ahead of each fit: fewer bad buckets, or as
// many at no more next hops. The ranking is the order fits are returned
// in, so the p-value of the best fit is an exact permutation test of the
// whole search, and plausible fits come first.
func fitPValues(fits []Fit, hyps []*fitHypothesis, maxN, p, f int) {
	// Draw the smaller class: the failing ports, or the working ones.
	k, minorFails := f, true
	if p-f < f {
		k, minorFails = p-f, false
	}
	maxBad := 0
	for _, x := range fits {
		maxBad = max(maxBad, len(x.BadBuckets))
	}
	rng := rand.New(rand.NewPCG(fitSeed, uint64(p)<<32|uint64(f)))
	perm := make([]int32, p)
	for i := range perm {
		perm[i] = int32(i)
	}
	stamp := make([]uint32, maxN)
	epoch := uint32(0)
	hits := make([]int, len(fits))

	for range FitRelabelings {
		for i := range k {
			j := i + rng.IntN(p-i)
			perm[i], perm[j] = perm[j], perm[i]
		}
		draw := perm[:k]
		bestBad, bestN := maxBad+1, 0
	search:
		for n := 2; n <= maxN; n++ {
			for _, h := range hyps {
				size := h.sizes[n]
				epoch++
				sum, distinct := 0, 0
				for _, i := range draw {
					b := h.mapping.Bucket(h.hashes[i], h.bits, n)
					if stamp[b] != epoch {
						stamp[b] = epoch
						distinct++
						if sum += int(size[b]); sum > k {
							break
						}
					}
				}
				if sum != k {
					continue // a drawn port shares a bucket with an undrawn one
				}
				bad := distinct
				if !minorFails {
					bad = h.occupied[n] - distinct
				}
				if bad >= 1 && bad <= n/2 && bad < bestBad {
					bestBad, bestN = bad, n
					if bad == 1 {
						break search // N only grows from here
					}
				}
			}
		}
		for i, x := range fits {
			if b := len(x.BadBuckets); bestBad < b || bestBad == b && bestN <= x.N {
				hits[i]++
			}
		}
	}
	for i := range fits {
		fits[i].PValue = float64(1+hits[i]) / float64(1+FitRelabelings)
		fits[i].Plausible = fits[i].PValue <= FitAlpha
	}
}

// FitSummary says in one line what the fits mean for the user: that no
// model explains the split, or the best plausible fit and how to use it.
func FitSummary(fits []Fit) string {
	const none = "no hash model explains the split (seeded hashes, as in Linux and most ASICs, cannot be predicted)"
	if len(fits) == 0 {
		return none
	}
	best := fits[0]
	if !best.Plausible {
		minP := best.PValue
		for _, x := range fits {
			minP = min(minP, x.PValue)
		}
		return fmt.Sprintf("%s; %d exact %s no better than chance (best p=%s: random choices of %d failing among %d ports fit as well), probe more ports",
			none, len(fits), fitPlural(len(fits), "fit is", "fits are"), fitFloat(minP), best.Failing, best.Total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ports in %s %s (0-based) of %d under %s/%s fail (all %d ports explained, %d failing; p=%s over %d random relabelings); Predict lists which other source ports will fail",
		fitPlural(len(best.BadBuckets), "bucket", "buckets"), fitBucketList(best.BadBuckets), best.N,
		best.Model, best.Mapping, best.Total, best.Failing, fitFloat(best.PValue), FitRelabelings)
	var also []string
	for _, x := range fits[1:] {
		if x.Plausible && len(x.BadBuckets) == len(best.BadBuckets) && x.N == best.N {
			also = append(also, x.Model+"/"+x.Mapping)
		}
	}
	if len(also) > 0 {
		fmt.Fprintf(&b, "; equally good: %s", strings.Join(also, ", "))
	}
	return b.String()
}

// Predict is the ports, of those given and in their order, that fail under
// fit: those hashed to one of its bad buckets. An unknown model or mapping
// predicts nothing.
func Predict(fit Fit, in FitInput, ports []uint16) []uint16 {
	m, err := ModelByName(fit.Model)
	if err != nil {
		return nil
	}
	mp, err := MappingByName(fit.Mapping)
	if err != nil || fit.N < 1 {
		return nil
	}
	var out []uint16
	for _, sp := range ports {
		if slices.Contains(fit.BadBuckets, BucketOf(m, mp, in.Tuple(sp), fit.N)) {
			out = append(out, sp)
		}
	}
	return out
}

func fitBucketList(bs []int) string {
	s := make([]string, len(bs))
	for i, b := range bs {
		s[i] = strconv.Itoa(b)
	}
	return strings.Join(s, ", ")
}

func fitFloat(f float64) string { return strconv.FormatFloat(f, 'g', 3, 64) }

func fitPlural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
