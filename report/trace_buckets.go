package report

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/ecmpscan/ecmpscan/hash"
)

// BucketPaths groups flows by forward path signature. The end-to-end probes
// go through the hash bucketer (the one place that groups results), keyed
// by the signature of the flow's source port; the flow states come from the
// flows. Buckets are sorted by descending failing flows, then signature.
func BucketPaths(flows []FlowTrace) []PathBucket {
	sig := make(map[uint16]string, len(flows))
	for _, f := range flows {
		sig[f.Sport] = f.Signature()
	}
	b := hash.NewBucketer(func(t hash.FiveTuple) string { return sig[t.SrcPort] })
	for _, f := range flows {
		t := hash.FiveTuple{Proto: hash.ProtoTCP, SrcPort: f.Sport}
		for i := range max(f.Sent, 0) {
			r := hash.Lost
			if i < f.Received {
				r = hash.Received
			}
			b.Add(hash.Observation{Tuple: t, Result: r})
		}
	}
	stats := map[string]hash.FlowStats{}
	for _, s := range b.Buckets() {
		stats[sig[s.Tuple.SrcPort]] = s
	}
	byKey := map[string]*PathBucket{}
	var keys []string
	for _, f := range flows {
		k := sig[f.Sport]
		pb, ok := byKey[k]
		if !ok {
			pb = &PathBucket{Signature: k, Hops: pathHops(f)}
			byKey[k] = pb
			keys = append(keys, k)
		}
		pb.Ports = append(pb.Ports, f.Sport)
		switch f.State {
		case hash.StateOK:
			pb.OK++
		case hash.StateFail:
			pb.Fail++
		case hash.StateFlaky:
			pb.Flaky++
		}
	}
	out := make([]PathBucket, 0, len(keys))
	for _, k := range keys {
		pb := byKey[k]
		slices.Sort(pb.Ports)
		pb.Ports = slices.Compact(pb.Ports)
		s := stats[k]
		pb.Sent, pb.Received = s.Sent, s.Received
		if s.Sent > 0 {
			pb.Loss = float64(s.Sent-s.Received) / float64(s.Sent)
		}
		pb.LossLow, pb.LossHigh = hash.Wilson(s.Sent-s.Received, s.Sent, 1.96)
		out = append(out, *pb)
	}
	slices.SortFunc(out, func(x, y PathBucket) int {
		return cmp.Or(cmp.Compare(y.Fail, x.Fail), cmp.Compare(x.Signature, y.Signature))
	})
	return out
}

// pathHops is the forward path of a flow by TTL, before the destination.
func pathHops(f FlowTrace) []netip.Addr {
	var out []netip.Addr
	for _, h := range f.Hops {
		if h.Reached {
			break
		}
		out = append(out, h.Addr)
	}
	return out
}

// TraceWidth estimates the width of the ECMP group the diagnosis points at,
// from the paths: the distinct next hops healthy flows reach from the first
// suspect, plus the one the failing flows take when no healthy flow shows it
// (a silent member, or the far end of a dead link seen only via other hops).
// It is a lower bound, invalid when the diagnosis names no forward suspect.
func TraceWidth(t Trace) hash.WidthEstimate {
	d := t.Diagnosis
	if d.Direction != DirectionForward || len(d.Suspects) == 0 {
		return hash.WidthEstimate{}
	}
	s := d.Suspects[0]
	next := map[netip.Addr]bool{}
	for _, f := range t.Flows {
		if f.State != hash.StateOK {
			continue
		}
		for i, h := range f.Hops {
			if h.Addr == s.Addr && i+1 < len(f.Hops) && f.Hops[i+1].Addr.IsValid() && !f.Hops[i+1].Reached {
				next[f.Hops[i+1].Addr] = true
			}
		}
	}
	if len(next) == 0 {
		return hash.WidthEstimate{}
	}
	n := len(next)
	if !s.Next.IsValid() || !next[s.Next] {
		n++ // the member the failing flows take
	}
	return hash.WidthFromNextHops(n)
}
