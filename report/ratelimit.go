package report

import (
	"math"
	"strconv"
	"strings"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Routers that rate-limit the ICMP errors they send to one destination
// (Linux by default: a burst of 6, then one a second) leave a fast trace's
// hops silent at random: their silence is missing answers, not a router
// that never answers, nor a fault.

// RateLimitedTTLs lists the TTLs below the destination's at which most of
// the healthy flows' hops that answered answered only some of their
// probes (at least 3 such hops): routers there answered, then ran out.
// A router that does not limit answers every probe of a hop, or, silent by
// configuration, none. Nil when no healthy flow reached the destination;
// with one probe per hop (--hop-probes 1) no hop can show it.
func RateLimitedTTLs(flows []FlowTrace) []int {
	dest := 0
	for _, f := range flows {
		if r := f.ReachedTTL; f.State == hash.StateOK && r > 0 && (dest == 0 || r < dest) {
			dest = r
		}
	}
	var out []int
	for ttl := 1; ttl < dest; ttl++ {
		answered, partly := 0, 0
		for _, f := range flows {
			if f.State != hash.StateOK || ttl > len(f.Hops) {
				continue
			}
			if h := f.Hops[ttl-1]; h.Answers > 0 {
				answered++
				if h.Answers < h.Probes {
					partly++
				}
			}
		}
		if partly >= 3 && 2*partly > answered {
			out = append(out, ttl)
		}
	}
	return out
}

// retryRate is what probing a rate-limited TTL's silent hops again showed
// on the healthy flows: first, the probes every hop got in the first pass
// (the fewest any hop got: probing again only adds), and miss, the log of
// the chance that one probe more to a hole there went unanswered.
type retryRate struct {
	first int
	miss  float64
}

// retryRates are the rate-limited TTLs' retryRate, where their holes were
// probed again. A failing flow's hole probed again r times and still
// silent is then (1-h)^r as likely from a router it reached as from one it
// never reached, h the healthy holes' answer rate when probed again: the
// evidence grows with the probes spent on it.
func (a *analysis) retryRates() map[int]retryRate {
	out := map[int]retryRate{}
	for ttl := range a.rateLimited {
		first := 0
		for _, f := range a.flows {
			if h := f.Hops; ttl <= len(h) && !h[ttl-1].Reached && h[ttl-1].Probes > 0 && (first == 0 || h[ttl-1].Probes < first) {
				first = h[ttl-1].Probes
			}
		}
		again, answered := 0, 0
		for _, f := range a.flows {
			if f.State != hash.StateOK || ttl > len(f.Hops) {
				continue
			}
			if h := f.Hops[ttl-1]; !h.Reached && h.Probes > first {
				again += h.Probes - first
				if h.Answers > 0 {
					answered++
				}
			}
		}
		if again > 0 {
			out[ttl] = retryRate{first: first, miss: math.Log1p(-(float64(answered) + 0.5) / (float64(again) + 1))}
		}
	}
	return out
}

// answeredOnRetry says a node's hop answered only when probed again.
func (r retryRate) answeredOnRetry(n pnode) bool {
	return n.hop != nil && n.answered() && n.hop.Probes > r.first
}

// nextSilentID is the id of a silent node right after node prev.
func nextSilentID(prev string) string {
	if i := strings.LastIndex(prev, "+"); strings.HasPrefix(prev, "*") && i > 0 {
		if k, err := strconv.Atoi(prev[i+1:]); err == nil {
			return silentID(prev[1:i], k+1)
		}
	}
	return silentID(prev, 1)
}

// maybeCross sets the chance that each flow whose hop at TTL t went
// unanswered crossed the router keyed key there, where routers at t
// rate-limit their errors (a flow's exposure is 1 where its path shows
// the place, 0 where it shows another): such a silence hides which member
// the flow took, so it crossed key as often as the flows that answered
// there did (weighed by what each traced flow stands for). Counting it
// as crossing none would leave a fault after key only the flows rate
// limits happened to spare, and hand the rest to a fault that exposes
// every flow (a return one). A flow whose hop before answered from a
// router no flow was seen to leave toward key did not cross it.
func (a *analysis) maybeCross(e *evidence, exposed []float64, key string, t int) {
	if !a.rateLimited[t] {
		return
	}
	from := map[string]bool{} // routers flows were seen to leave toward key
	var at, all float64
	for i, p := range a.paths {
		if t >= len(p) || !p[t].answered() {
			continue
		}
		all += e.w[i]
		if a.nodeKey(p[t]) == key {
			at += e.w[i]
			from[a.nodeKey(p[t-1])] = true
		}
	}
	if all == 0 {
		return
	}
	for i, p := range a.paths {
		if t >= len(p) || p[t].answered() || p[t].reached || exposed[i] > 0 {
			continue
		}
		if prev := p[t-1]; prev.answered() && !from[a.nodeKey(prev)] {
			continue
		}
		exposed[i] = at / all
	}
}
