package report

import "github.com/ecmpscan/ecmpscan/hash"

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
