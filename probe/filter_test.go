package probe

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// The socket filters run in x/net/bpf's VM on real segments: what the
// kernel would pass to the receive loop, and what it would drop.
func TestSocketFilters(t *testing.T) {
	run := func(prog []bpf.Instruction, pkt []byte) bool {
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(pkt)
		if err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	segmentTo := func(src, dst string, sport, dport uint16, v6 bool) []byte {
		tu := hash.FiveTuple{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Proto: hash.ProtoTCP, SrcPort: sport, DstPort: dport}
		b, err := packet.AppendTCPSYN(nil, packet.SYN{Tuple: tu, Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		if v6 {
			return b // an IPv6 raw socket sees no IP header
		}
		ip := make([]byte, 20, 20+len(b)) // the IPv4 header an IPv4 raw socket sees
		ip[0], ip[9] = 0x45, hash.ProtoTCP
		a := tu.Src.As4()
		copy(ip[12:16], a[:])
		return append(ip, b...)
	}
	segment := func(src, dst string, sport uint16, v6 bool) []byte { return segmentTo(src, dst, sport, 30000, v6) }
	v4 := ipv4TCPFilter(netip.MustParseAddr("198.18.2.2"), 0, 3306)
	for _, c := range []struct {
		name string
		pkt  []byte
		want bool
	}{
		{"v4 from the target's port", segment("198.18.2.2", "198.18.1.1", 3306, false), true},
		{"v4 other port", segment("198.18.2.2", "198.18.1.1", 22, false), false},
		{"v4 other host", segment("198.18.2.3", "198.18.1.1", 3306, false), false},
	} {
		if got := run(v4, c.pkt); got != c.want {
			t.Errorf("%s: passed %v, want %v", c.name, got, c.want)
		}
	}
	v6 := ipv6TCPFilter(0, 3306)
	if !run(v6, segment("2001:db8:2::2", "2001:db8:1::1", 3306, true)) || run(v6, segment("2001:db8:2::2", "2001:db8:1::1", 443, true)) {
		t.Error("IPv6 filter: want the target's port passed and others dropped")
	}
	// A reverse prober at the server takes the client's segments to its
	// own port, from any source port.
	rev4 := ipv4TCPFilter(netip.MustParseAddr("198.18.1.1"), 2, 3306)
	if !run(rev4, segmentTo("198.18.1.1", "198.18.2.2", 30001, 3306, false)) || run(rev4, segmentTo("198.18.1.1", "198.18.2.2", 3306, 22, false)) {
		t.Error("reverse IPv4 filter: want segments to the server's port passed and others dropped")
	}
	rev6 := ipv6TCPFilter(2, 3306)
	if !run(rev6, segmentTo("2001:db8:1::1", "2001:db8:2::2", 30001, 3306, true)) || run(rev6, segmentTo("2001:db8:1::1", "2001:db8:2::2", 3306, 22, true)) {
		t.Error("reverse IPv6 filter: want segments to the server's port passed and others dropped")
	}
}
