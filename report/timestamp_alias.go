package report

import (
	"maps"
	"net/netip"
	"slices"
)

// The prespecified-timestamp alias test (probe.AliasProber), which a trace
// runs where its diagnosis cannot decide: an echo request to each address
// asks, in an IPv4 timestamp option, to be stamped by that address and
// then by another one that answered at the same TTL. The router holding
// both stamps both. Its answer also passes the routers between it and
// us, and one of them would stamp the second address if it were its own:
// the test assumes that a router at the same distance is not on the way
// back from this one, which holds unless the way back is longer than the
// way out. One direction suffices (A's answer stamped by B), since the
// fault under test may well eat B's own answers.
// As with the IP ID counters (alias.go), only a positive finding is used:
// a router that drops options, or a reply lost on the way, says nothing.

const (
	// aliasTestMaxAddrs bounds the addresses asked about at one TTL: the
	// ordered pairs grow as its square (132 for 12).
	aliasTestMaxAddrs = 12
	// aliasTestMaxPairs bounds the echo requests of one test.
	aliasTestMaxPairs = 512
)

// AliasTest is what the prespecified-timestamp alias test found.
type AliasTest struct {
	Asked    int // echo requests sent, one per ordered pair
	Answered int // echo replies
	Honoured int // replies that stamped the address they were sent to
	// Groups are the addresses found to be one router's: two or more each,
	// sorted, in order of their first address.
	Groups [][]netip.Addr
}

// AliasAnswer is what came back for one pair: an echo request to Addr
// asking Addr, then Ask, to stamp it.
type AliasAnswer struct {
	Addr, Ask netip.Addr
	Answered  bool
	Stamped   []netip.Addr
}

// AliasPairs are the ordered pairs the alias test asks about: at each TTL
// where two or more IPv4 addresses answered the traced flows (the target
// apart), each of the most answering ones with each other, within the
// bounds above.
func AliasPairs(flows []FlowTrace, target netip.Addr) [][2]netip.Addr {
	ttls := map[int]bool{}
	for _, f := range flows {
		for _, h := range f.Hops {
			ttls[h.TTL] = true
		}
	}
	var out [][2]netip.Addr
	for _, ttl := range slices.Sorted(maps.Keys(ttls)) {
		all, _ := answeringAt(flows, ttl, target)
		addrs := slices.DeleteFunc(all, func(a netip.Addr) bool { return !a.Is4() })
		addrs = addrs[:min(len(addrs), aliasTestMaxAddrs)]
		for _, a := range addrs {
			for _, b := range addrs {
				if a != b && len(out) < aliasTestMaxPairs {
					out = append(out, [2]netip.Addr{a, b})
				}
			}
		}
	}
	return out
}

// JudgeAliases sums the answers up and groups the addresses whose router
// stamped both.
func JudgeAliases(answers []AliasAnswer) *AliasTest {
	t := &AliasTest{Asked: len(answers)}
	one := unionFind{}
	for _, a := range answers {
		if !a.Answered {
			continue
		}
		t.Answered++
		if !slices.Contains(a.Stamped, a.Addr) {
			continue
		}
		t.Honoured++
		if slices.Contains(a.Stamped, a.Ask) {
			one.union(a.Addr, a.Ask)
		}
	}
	t.Groups = one.groups()
	return t
}
