package route

import (
	"context"
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Lookups bounds the lookups of Common.
const Lookups = 8

// LookupFunc is Lookup, or a test's stand-in.
type LookupFunc func(context.Context, Query) (Route, error)

// Common is the gateway the routing table sends the flows to, asked for up
// to Lookups of them spread over the list: invalid when lookup is nil or
// fails, the destination is on-link, or the answers differ (a multipath
// route on this host), which a diagnosis must not guess between.
func Common(ctx context.Context, lookup LookupFunc, flows []hash.FiveTuple) netip.Addr {
	if lookup == nil || len(flows) == 0 {
		return netip.Addr{}
	}
	var gw netip.Addr
	n := min(len(flows), Lookups)
	for i := range n {
		t := flows[i*len(flows)/n]
		r, err := lookup(ctx, Query{Src: t.Src, Dst: t.Dst, Proto: t.Proto, Sport: t.SrcPort, Dport: t.DstPort})
		if err != nil || !r.Gateway.IsValid() || (gw.IsValid() && r.Gateway != gw) {
			return netip.Addr{}
		}
		gw = r.Gateway
	}
	return gw
}
