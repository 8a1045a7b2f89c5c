package probe

import (
	"math/rand/v2"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Order lays out count rounds over the flows. Every round uses the same
// shuffled order, so two probes on one flow are always a whole round apart:
// the farthest apart they can be, which lets server state (SYN_RECV,
// TIME_WAIT) from the previous probe clear. Probes of the second kind
// (ICMP echo) are spread evenly through the TCP probes rather than bunched.
func Order(tcp []hash.FiveTuple, tcpKind Kind, echo []hash.FiveTuple, count int, rng *rand.Rand) []Probe {
	tcpRound := shuffled(tcp, rng)
	echoRound := shuffled(echo, rng)
	total := (len(tcpRound) + len(echoRound)) * count
	probes := make([]Probe, 0, total)
	for rep := 0; rep < count; rep++ {
		// Bresenham-style interleave of the two kinds within the round.
		ti, ei := 0, 0
		n := len(tcpRound) + len(echoRound)
		for k := 0; k < n; k++ {
			wantEcho := len(echoRound) > 0 && (ei+1)*n <= (k+1)*len(echoRound)
			if (wantEcho && ei < len(echoRound)) || ti == len(tcpRound) {
				probes = append(probes, Probe{Kind: KindICMPEcho, Tuple: echoRound[ei], Repeat: rep})
				ei++
				continue
			}
			probes = append(probes, Probe{Kind: tcpKind, Tuple: tcpRound[ti], Repeat: rep})
			ti++
		}
	}
	return probes
}

func shuffled(ts []hash.FiveTuple, rng *rand.Rand) []hash.FiveTuple {
	out := append([]hash.FiveTuple(nil), ts...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// TraceOrder lays out TTL-limited probes: every flow at every TTL from 1 to
// maxTTL, probesPerHop times, the five-tuple fixed per flow (Paris-style;
// only the cookie in the sequence number changes). Consecutive probes go to
// different flows and TTLs, so no router gets a burst of probes to answer.
func TraceOrder(flows []hash.FiveTuple, maxTTL, probesPerHop int, rng *rand.Rand) []Probe {
	order := shuffled(flows, rng)
	probes := make([]Probe, 0, len(flows)*maxTTL*probesPerHop)
	for rep := 0; rep < probesPerHop; rep++ {
		for ttl := 1; ttl <= maxTTL; ttl++ {
			// Rotate the flows per TTL so the same flow does not always lead.
			for k := range order {
				t := order[(k+ttl)%len(order)]
				probes = append(probes, Probe{Kind: KindTCPSYN, Tuple: t, Repeat: rep, TTL: uint8(ttl)})
			}
		}
	}
	return probes
}
