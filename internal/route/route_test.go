package route

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// The request `ip route get 198.18.0.2 from 198.19.0.2 ipproto tcp sport
// 40000 dport 3306` sends (iproute2 6.1 under strace on x86-64), but for
// the sequence number. Netlink is in host byte order.
func TestRequestGolden(t *testing.T) {
	if !littleEndian {
		t.Skip("the golden bytes are little-endian")
	}
	got, err := Request(Query{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.18.0.2"),
		Proto: 6, Sport: 40000, Dport: 3306}, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := "44000000" + "1a00" + "0100" + "07000000" + "00000000" + // nlmsghdr
		"02" + "20" + "20" + "00" + "00" + "00" + "00" + "00" + "00100000" + // rtmsg
		"0800" + "0100" + "c6120002" + // RTA_DST
		"0800" + "0200" + "c6130002" + // RTA_SRC
		"0500" + "1b00" + "06000000" + // RTA_IP_PROTO
		"0600" + "1c00" + "9c400000" + // RTA_SPORT
		"0600" + "1d00" + "0cea0000" // RTA_DPORT
	if hex.EncodeToString(got) != want {
		t.Errorf("request\n got %x\nwant %s", got, want)
	}
}

func TestRequestRefusesMixedFamilies(t *testing.T) {
	if _, err := Request(Query{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("2001:db8::2")}, 1); err == nil {
		t.Error("an IPv4 source to an IPv6 destination was accepted")
	}
	if _, err := Request(Query{}, 1); err == nil {
		t.Error("no destination was accepted")
	}
}

// reply builds an RTM_NEWROUTE for seq with the given attributes.
func reply(seq uint32, attrs ...[]byte) []byte {
	body := make([]byte, rtmsgLen)
	for _, a := range attrs {
		body = append(body, a...)
	}
	return message(rtmNewRoute, seq, body)
}

func message(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, body...)
}

func attr(typ uint16, data []byte) []byte { return appendAttr(nil, typ, data) }

func TestParseReply(t *testing.T) {
	oif := binary.NativeEndian.AppendUint32(nil, 3)
	gw4, gw6 := netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("fe80::1")
	cases := []struct {
		name string
		b    []byte
		want Route
		err  error
	}{
		{"gateway", reply(5, attr(rtaDst, []byte{198, 18, 0, 2}), attr(rtaOIF, oif), attr(rtaGateway, gw4.AsSlice())), Route{Gateway: gw4, OIF: 3}, nil},
		{"on-link", reply(5, attr(rtaOIF, oif)), Route{OIF: 3}, nil},
		{"ipv6 link-local", reply(5, attr(rtaGateway, gw6.AsSlice()), attr(rtaOIF, oif)), Route{Gateway: gw6, OIF: 3}, nil},
		{"via", reply(5, attr(rtaVia, append([]byte{afInet6, 0}, gw6.AsSlice()...))), Route{Gateway: gw6}, nil},
		{"another request's first", append(reply(4, attr(rtaGateway, []byte{1, 2, 3, 4})), reply(5, attr(rtaGateway, gw4.AsSlice()))...), Route{Gateway: gw4}, nil},
		{"refused", message(nlmsgError, 5, binary.NativeEndian.AppendUint32(nil, uint32(0xffffff9b))), Route{}, ErrNoRoute},
		{"not ours", reply(6), Route{}, ErrNoReply},
		{"short header", []byte{1, 2, 3}, Route{}, ErrShort},
		{"length past the end", message(rtmNewRoute, 5, nil)[:15], Route{}, ErrShort},
		{"short rtmsg", message(rtmNewRoute, 5, []byte{2, 32}), Route{}, ErrShort},
		{"attribute past the end", reply(5, []byte{40, 0, 5, 0, 1, 2}), Route{}, ErrShort},
	}
	for _, c := range cases {
		got, err := ParseReply(c.b, 5)
		if !errors.Is(err, c.err) || got != c.want {
			t.Errorf("%s: %+v, %v; want %+v, %v", c.name, got, err, c.want, c.err)
		}
	}
}

// FuzzParseReply: any bytes parse without panicking, and a route read
// back from a reply built from the fuzzer's gateway is that gateway.
func FuzzParseReply(f *testing.F) {
	f.Add(reply(5, attr(rtaGateway, []byte{198, 19, 0, 1})), []byte{198, 19, 0, 1})
	f.Add(message(nlmsgError, 5, []byte{0x9b, 0xff, 0xff, 0xff}), []byte{})
	f.Add([]byte{}, make([]byte, 16))
	f.Fuzz(func(t *testing.T, b, gw []byte) {
		_, _ = ParseReply(b, 5)
		addr, ok := netip.AddrFromSlice(gw)
		if !ok {
			return
		}
		r, err := ParseReply(reply(5, attr(rtaOIF, []byte{1, 0, 0, 0}), attr(rtaGateway, gw)), 5)
		if err != nil || r.Gateway != addr {
			t.Fatalf("gateway %v read back as %v, %v", addr, r.Gateway, err)
		}
	})
}

// Common keeps a gateway only when every lookup names it.
func TestCommon(t *testing.T) {
	gw, other := netip.MustParseAddr("198.19.0.1"), netip.MustParseAddr("198.19.0.5")
	var flows []hash.FiveTuple
	for sp := range uint16(40) {
		flows = append(flows, hash.FiveTuple{Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.18.0.2"),
			Proto: hash.ProtoTCP, SrcPort: 30000 + sp, DstPort: 3306})
	}
	answer := func(odd netip.Addr, err error) (LookupFunc, *int) {
		n := new(int)
		return func(_ context.Context, q Query) (Route, error) {
			*n++
			if q.Sport%2 == 1 {
				return Route{Gateway: odd}, err
			}
			return Route{Gateway: gw}, nil
		}, n
	}
	for _, c := range []struct {
		name string
		odd  netip.Addr
		err  error
		want netip.Addr
	}{
		{"one gateway", gw, nil, gw},
		{"multipath", other, nil, netip.Addr{}},
		{"on-link", netip.Addr{}, nil, netip.Addr{}},
		{"failed", gw, ErrNoRoute, netip.Addr{}},
	} {
		lookup, n := answer(c.odd, c.err)
		if got := Common(context.Background(), lookup, flows); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		if *n > Lookups {
			t.Errorf("%s: %d lookups", c.name, *n)
		}
	}
	if got := Common(context.Background(), nil, flows); got.IsValid() {
		t.Errorf("no lookup: %v", got)
	}
}

func TestZoned(t *testing.T) {
	names := func(i int) (string, error) {
		if i == 3 {
			return "eth0", nil
		}
		return "", errors.New("no such interface")
	}
	for _, c := range []struct {
		r    Route
		want string
	}{
		{Route{Gateway: netip.MustParseAddr("fe80::1"), OIF: 3}, "fe80::1%eth0"},
		{Route{Gateway: netip.MustParseAddr("fe80::1"), OIF: 4}, "fe80::1"},
		{Route{Gateway: netip.MustParseAddr("2001:db8::1"), OIF: 3}, "2001:db8::1"},
		{Route{Gateway: netip.MustParseAddr("198.19.0.1"), OIF: 3}, "198.19.0.1"},
	} {
		if got := c.r.Zoned(names).Gateway.String(); got != c.want {
			t.Errorf("%v on %d: %s, want %s", c.r.Gateway, c.r.OIF, got, c.want)
		}
	}
}
