package probe

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// echoDatagram is the parse both ping probers share: an echo reply is
// kept, an echo request (our own, looped back) or junk is not.
func TestEchoDatagram(t *testing.T) {
	for _, c := range []struct{ src, dst string }{{"198.18.1.1", "198.18.2.2"}, {"2001:db8:1::1", "2001:db8:2::2"}} {
		src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
		req, err := packet.AppendEcho(nil, packet.Echo{Src: dst, Dst: src, ID: 4711, Seq: 9, Payload: echoPayload[:]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := echoDatagram(req, dst, src); !errors.Is(err, ErrIgnored) && !errors.Is(err, packet.ErrUnsupported) {
			t.Errorf("%s: an echo request gave %v, want it ignored", c.src, err)
		}
		reply := append([]byte(nil), req...)
		reply[0] = map[bool]byte{true: 0, false: 129}[src.Is4()] // echo reply
		fixICMPChecksum(reply, dst, src)
		rep, err := echoDatagram(reply, dst.WithZone("eth0"), src)
		if err != nil || rep.Kind != packet.KindEchoReply || rep.EchoID != 4711 || rep.EchoSeq != 9 || rep.From != dst {
			t.Errorf("%s: reply parsed as %+v, %v; want echo reply id 4711 seq 9 from %s", c.src, rep, err, dst)
		}
		if _, err := echoDatagram(reply[:3], dst, src); err == nil {
			t.Errorf("%s: 3 bytes parsed", c.src)
		}
	}
}

// fixICMPChecksum recomputes the checksum after the type was changed; an
// ICMPv6 checksum covers the pseudo-header.
func fixICMPChecksum(b []byte, src, dst netip.Addr) {
	b[2], b[3] = 0, 0
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(p[i])<<8 | uint32(p[i+1])
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	if src.Is6() {
		s, d := src.As16(), dst.As16()
		add(s[:])
		add(d[:])
		add([]byte{0, 0, byte(len(b) >> 8), byte(len(b)), 0, 0, 0, 58})
	}
	add(b)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	b[2], b[3] = byte(c>>8), byte(c)
}
