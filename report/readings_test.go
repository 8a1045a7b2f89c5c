package report

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Three second-tier routers that answer from the link toward each of three
// first-tier members (nine addresses), and a last router from its link
// toward each: read by link, three routers. A pair of the addresses
// grouped into one router (a shared IP ID counter) is still one router's
// links, so the reading stands; a group of more addresses than there are
// links toward the stage before is not links, and leaves the stage read
// by router.
func TestReadingByLinkWithGroups(t *testing.T) {
	const r1 = "198.18.255.1"
	r2 := func(j int) string { return fmt.Sprintf("198.19.%d.2", 200+j) } // its link toward q_j
	p := func(i int) string { return fmt.Sprintf("198.18.255.%d", 10+i) }
	qLink := func(j, i int) string { return fmt.Sprintf("198.19.%d.%d", 100+i, 16*j+2) }
	var fs []FlowTrace
	for i := 1; i <= 3; i++ {
		for j := 1; j <= 3; j++ {
			for k := 1; k <= 3; k++ { // q_j's errors leave by its link toward p_k
				for range 2 {
					fs = append(fs, flowOf(uint16(len(fs)+1), hash.StateOK, r1, p(i), qLink(j, k), r2(j), "="))
				}
			}
		}
	}
	const q = 3 // position of the second tier
	read := func(groups ...[]string) *fabricReading {
		a := newAnalysis(fs)
		for _, g := range groups {
			for _, x := range g {
				a.router[netip.MustParseAddr(x)] = netip.MustParseAddr(g[0])
			}
		}
		a.readings = nil
		return a.reading(alter{})
	}
	if r := read(); r.link[q] != 3 || r.router[q] != 9 || r.fit < 0.5 {
		t.Fatalf("ungrouped: link %d router %d fit %.3g, want 3 by link, 9 by router", r.link[q], r.router[q], r.fit)
	}
	if r := read([]string{qLink(1, 1), qLink(1, 2)}); r.link[q] != 3 || r.router[q] != 8 || r.fit < 0.5 {
		t.Errorf("one pair grouped: link %d router %d fit %.3g, want 3 by link, 8 by router", r.link[q], r.router[q], r.fit)
	}
	wide := []string{qLink(1, 1), qLink(1, 2), qLink(1, 3), qLink(2, 1)}
	if r := read(wide); r.link[q] != r.router[q] || r.router[q] != 6 {
		t.Errorf("a group wider than the links: link %d router %d, want both 6", r.link[q], r.router[q])
	}
}
