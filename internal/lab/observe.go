package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Every router records, in nftables sets at the very start of prerouting,
// the ports (or echo id) of each probe and answer between client and
// server it receives: "f" sets for SYNs and echo requests, "r" sets for
// SYN-ACKs, RSTs and echo replies, keyed in the
// client's orientation (client port . server port). Since a tuple always
// takes the same path in this lab (fixed seeds, no flow label in the hash),
// the routers whose sets hold a tuple are its path, in tier order. This is
// how the oracle learns IPv6 paths: `ip -6 route get` hashes differently
// from the IPv6 forwarding path and would name the wrong member.
const obsTable = "eslobs"

// observeRules is the nftables ruleset that records traffic on router n.
func (f *Fabric) observeRules() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", obsTable)
	for _, fam := range []string{"4", "6"} {
		for _, dir := range []string{"f", "r"} {
			fmt.Fprintf(&b, "\tset tcp%s%s { typeof tcp sport . tcp dport; flags dynamic,timeout; timeout 30m; size 262144; }\n", dir, fam)
		}
	}
	for _, dir := range []string{"f", "r"} {
		fmt.Fprintf(&b, "\tset icmp%s4 { typeof icmp id; flags dynamic,timeout; timeout 30m; size 65536; }\n", dir)
		fmt.Fprintf(&b, "\tset icmp%s6 { typeof icmpv6 id; flags dynamic,timeout; timeout 30m; size 65536; }\n", dir)
	}
	b.WriteString("\tchain pre {\n\t\ttype filter hook prerouting priority -300; policy accept;\n")
	s4, s6 := f.Server4.String(), f.Server6.String()
	// Forward: SYNs. Return: SYN-ACKs and RSTs. (Other segments of a flow
	// take the same path, but would be seen past a drop-synack router:
	// e.g. the ACK a server sends to a SYN that does not match its pending
	// SYN-ACK.)
	const syn = "tcp flags & (syn | ack) == syn"
	const answer = "tcp flags & (syn | rst) != 0"
	fmt.Fprintf(&b, "\t\tip daddr %s %s update @tcpf4 { tcp sport . tcp dport }\n", s4, syn)
	fmt.Fprintf(&b, "\t\tip saddr %s %s update @tcpr4 { tcp dport . tcp sport }\n", s4, answer)
	fmt.Fprintf(&b, "\t\tip6 daddr %s %s update @tcpf6 { tcp sport . tcp dport }\n", s6, syn)
	fmt.Fprintf(&b, "\t\tip6 saddr %s %s update @tcpr6 { tcp dport . tcp sport }\n", s6, answer)
	fmt.Fprintf(&b, "\t\tip daddr %s icmp type echo-request update @icmpf4 { icmp id }\n", s4)
	fmt.Fprintf(&b, "\t\tip saddr %s icmp type echo-reply update @icmpr4 { icmp id }\n", s4)
	fmt.Fprintf(&b, "\t\tip6 daddr %s icmpv6 type echo-request update @icmpf6 { icmpv6 id }\n", s6)
	fmt.Fprintf(&b, "\t\tip6 saddr %s icmpv6 type echo-reply update @icmpr6 { icmpv6 id }\n", s6)
	b.WriteString("\t}\n}\n")
	return b.String()
}

// obsKey identifies a recorded flow: set name and client-side ports (or id).
type obsKey struct {
	set        string
	cport, spt uint16
}

// observation holds, per router, the keys its sets hold.
type observation map[string]map[obsKey]bool

// tupleKeys returns the forward and return keys of t.
func tupleKeys(t hash.FiveTuple) (fwd, ret obsKey) {
	fam := "4"
	if t.Is6() {
		fam = "6"
	}
	if t.Proto == hash.ProtoTCP {
		return obsKey{"tcpf" + fam, t.SrcPort, t.DstPort}, obsKey{"tcpr" + fam, t.SrcPort, t.DstPort}
	}
	return obsKey{"icmpf" + fam, t.SrcPort, 0}, obsKey{"icmpr" + fam, t.SrcPort, 0}
}

// observe reads every router's sets.
func (f *Fabric) observe(ctx context.Context) (observation, error) {
	obs := observation{}
	var mu sync.Mutex
	err := forEachNode(f.Routers, func(n string) error {
		out, _, err := run(ctx, "", "ip", "netns", "exec", f.Namespace(n), "nft", "-j", "-n", "list", "table", "inet", obsTable)
		if err != nil {
			return err
		}
		keys, err := parseObsJSON(out)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		mu.Lock()
		obs[n] = keys
		mu.Unlock()
		return nil
	})
	return obs, err
}

// parseObsJSON reads the elements of the sets in `nft -j list table` output.
func parseObsJSON(out string) (map[obsKey]bool, error) {
	var doc struct {
		Nftables []struct {
			Set *struct {
				Name string            `json:"name"`
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nft json: %w", err)
	}
	keys := map[obsKey]bool{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			vals, err := elemValues(raw)
			if err != nil {
				return nil, fmt.Errorf("set %s: %w", o.Set.Name, err)
			}
			k := obsKey{set: o.Set.Name}
			switch len(vals) {
			case 1:
				k.cport = vals[0]
			case 2:
				k.cport, k.spt = vals[0], vals[1]
			default:
				return nil, fmt.Errorf("set %s: element %s", o.Set.Name, raw)
			}
			keys[k] = true
		}
	}
	return keys, nil
}

// elemValues decodes an element: 7, {"concat":[1,2]}, or either wrapped in
// {"elem":{"val":...,"expires":...}}.
func elemValues(raw json.RawMessage) ([]uint16, error) {
	var wrapped struct {
		Elem *struct {
			Val json.RawMessage `json:"val"`
		} `json:"elem"`
		Concat []uint16 `json:"concat"`
	}
	var n uint16
	if err := json.Unmarshal(raw, &n); err == nil {
		return []uint16{n}, nil
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		return nil, fmt.Errorf("element %s: %w", raw, err)
	}
	if wrapped.Elem != nil {
		return elemValues(wrapped.Elem.Val)
	}
	if len(wrapped.Concat) > 0 {
		return wrapped.Concat, nil
	}
	return nil, fmt.Errorf("element %s", raw)
}

// paths returns the routers that saw t, as hops in path order.
func (f *Fabric) observedPaths(obs observation, t hash.FiveTuple) (fwd, ret []Hop) {
	fk, rk := tupleKeys(t)
	topo := f.topology()
	var fn, rn []string
	for _, r := range f.Routers {
		if obs[r][fk] {
			fn = append(fn, r)
		}
		if obs[r][rk] {
			rn = append(rn, r)
		}
	}
	sort.SliceStable(fn, func(i, j int) bool { return topo.tier[fn[i]] < topo.tier[fn[j]] })
	sort.SliceStable(rn, func(i, j int) bool { return topo.tier[rn[i]] > topo.tier[rn[j]] })
	return hopsAlong(fn, "c", "s"), hopsAlong(rn, "s", "c")
}

// hopsAlong turns routers in path order into hops. The last router's Out
// is the end host if it is adjacent to it, else empty (the packet died).
func hopsAlong(nodes []string, from, to string) []Hop {
	hs := make([]Hop, len(nodes))
	for i, n := range nodes {
		prev := from
		if i > 0 {
			prev = nodes[i-1]
		}
		hs[i] = Hop{Node: n, In: IfName(prev)}
		switch {
		case i+1 < len(nodes):
			hs[i].Out = IfName(nodes[i+1])
		case (to == "s" && n == "r2") || (to == "c" && n == "r1"):
			hs[i].Out = IfName(to)
		}
	}
	return hs
}
