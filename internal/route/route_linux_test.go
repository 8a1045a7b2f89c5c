package route

import (
	"context"
	"net/netip"
	"testing"
)

// The loopback address is on-link everywhere, root or not: the kernel
// answers with no gateway.
func TestLookupLoopback(t *testing.T) {
	for _, dst := range []string{"127.0.0.1", "::1"} {
		r, err := Lookup(context.Background(), Query{Dst: netip.MustParseAddr(dst), Proto: 6, Sport: 40000, Dport: 3306})
		if err != nil {
			t.Logf("%s: %v (no loopback of that family here?)", dst, err)
			continue
		}
		if r.Gateway.IsValid() || r.OIF == 0 {
			t.Errorf("%s: %+v, want on-link with an interface", dst, r)
		}
	}
}
