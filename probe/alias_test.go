package probe

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// A pair's probe is an echo tuple to its address, its identifier the
// pair's index, so a reply names the pair it answers.
func TestAliasTuples(t *testing.T) {
	src := netip.MustParseAddr("198.18.1.1")
	pairs := []AliasPair{
		{Addr: netip.MustParseAddr("198.19.1.2"), Ask: netip.MustParseAddr("198.19.2.2")},
		{Addr: netip.MustParseAddr("198.19.2.2"), Ask: netip.MustParseAddr("198.19.1.2")},
	}
	got := AliasTuples(src, pairs)
	for i, tu := range got {
		want := hash.FiveTuple{Src: src, Dst: pairs[i].Addr, Proto: hash.ProtoICMP, SrcPort: uint16(i)}
		if tu != want {
			t.Errorf("tuple %d: %v, want %v", i, tu, want)
		}
	}
}

// What cannot be asked is refused before any socket opens.
func TestOpenAliasRefuses(t *testing.T) {
	v4, v6 := netip.MustParseAddr("198.19.1.2"), netip.MustParseAddr("2001:db8::2")
	for _, tc := range []struct {
		name  string
		src   netip.Addr
		pairs []AliasPair
	}{
		{"IPv6 source", v6, nil},
		{"IPv6 pair", v4, []AliasPair{{Addr: v4, Ask: v6}}},
		{"too many", v4, make([]AliasPair, MaxAliasPairs+1)},
	} {
		if _, err := OpenAlias(tc.src, tc.pairs); !errors.Is(err, ErrBadPlan) {
			t.Errorf("%s: %v, want ErrBadPlan", tc.name, err)
		}
	}
}
