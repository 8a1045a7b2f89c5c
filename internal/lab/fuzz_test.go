package lab

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseFault: no --fault text panics the parser; what it accepts names
// a known kind on a well-formed node, and every refusal wraps ErrBadSpec.
func FuzzParseFault(f *testing.F) {
	for _, s := range []string{"blackhole-fwd@p3", "loss=20@p2", "link-drop@p1-q2", "silent@q1", "drop-synack@q1", "loss=0@p1", "x@", "@", "link-drop@p1-"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ft, err := ParseFault(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("ParseFault(%q): %v does not wrap ErrBadSpec", s, err)
			}
			return
		}
		if !nodeRE.MatchString(ft.Node) || !strings.Contains(kindList(), string(ft.Kind)) {
			t.Fatalf("ParseFault(%q) accepted %+v", s, ft)
		}
		if (ft.Kind == Loss) != (ft.Percent >= 1 && ft.Percent <= 100) || (ft.Kind == LinkDrop) != (ft.Peer != "") {
			t.Fatalf("ParseFault(%q) = %+v: percent or peer out of place", s, ft)
		}
	})
}
