package packet

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

var otherRouter4 = netip.MustParseAddr("198.18.9.1")

// stampedOption is a prespecified timestamp option for [router4,
// otherRouter4] whose pointer is ptr, with times where it has passed.
func stampedOption(ptr byte) []byte {
	opt := []byte{68, 20, ptr, 3,
		198, 18, 0, 1, 0, 0, 0, 0,
		198, 18, 9, 1, 0, 0, 0, 0}
	for at := 4; at+8 < int(ptr) && at+8 <= len(opt); at += 8 {
		copy(opt[at+4:at+8], []byte{0x04, 0x67, 0xdd, 0x03})
	}
	return opt
}

// stampedEcho4 is an echo reply from router4 whose header carries
// options, as a router answers the alias test.
func stampedEcho4(options []byte) []byte {
	return craftIPv4(router4, us4, hash.ProtoICMP, 63, 0x4545, options, craftICMP(router4, us4, 0, 0, idSeq(0x1234, 9), nil))
}

// stampedEchoReply is stampedEcho4 parsed, with its stamps.
func stampedEchoReply(stamped ...netip.Addr) Reply {
	return Reply{Kind: KindEchoReply, From: router4, To: us4, TTL: 63, IPID: 0x4545,
		Tuple:  hash.FiveTuple{Src: router4, Dst: us4, Proto: hash.ProtoICMP, DstPort: 0x1234},
		EchoID: 0x1234, EchoSeq: 9, Stamped: stamped}
}

// The option as Linux took it in the lab (iputils' ping -T tsprespec
// builds the same): type 68, length 20, pointer 5, flag 3, two entries.
func TestAppendPrespecifiedTimestampGolden(t *testing.T) {
	got, err := AppendPrespecifiedTimestamp([]byte{0xee}, router4, otherRouter4)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0xee, 68, 20, 5, 3, 198, 18, 0, 1, 0, 0, 0, 0, 198, 18, 9, 1, 0, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("got  % x\nwant % x", got, want)
	}
	if s, err := Stamped(got[1:]); err != nil || s != nil {
		t.Fatalf("a fresh option reads stamped %v, %v; want none", s, err)
	}
}

func TestAppendPrespecifiedTimestampRefuses(t *testing.T) {
	four := []netip.Addr{router4, router4, router4, router4}
	for _, tc := range []struct {
		name  string
		addrs []netip.Addr
		want  error
	}{
		{"none", nil, ErrBadOption},
		{"five", append(four, router4), ErrBadOption},
		{"IPv6", []netip.Addr{router4, netip.MustParseAddr("2001:db8::1")}, ErrInvalidAddr},
		{"unspecified", []netip.Addr{netip.IPv4Unspecified()}, ErrInvalidAddr},
		{"zero", []netip.Addr{{}}, ErrInvalidAddr},
	} {
		got, err := AppendPrespecifiedTimestamp([]byte{1}, tc.addrs...)
		if !errors.Is(err, tc.want) || !bytes.Equal(got, []byte{1}) {
			t.Errorf("%s: got % x, %v; want the input back and %v", tc.name, got, err, tc.want)
		}
	}
	if got, err := AppendPrespecifiedTimestamp(nil, four...); err != nil || len(got) != 36 {
		t.Errorf("four addresses: %d bytes, %v; want 36", len(got), err)
	}
}

func TestStamped(t *testing.T) {
	tsOnly := []byte{68, 12, 13, 0, 0, 0, 0, 1, 0, 0, 0, 2} // flag 0: times only
	for _, tc := range []struct {
		name    string
		options []byte
		want    []netip.Addr
		err     error
	}{
		{"both", stampedOption(21), []netip.Addr{router4, otherRouter4}, nil},
		{"first", stampedOption(13), []netip.Addr{router4}, nil},
		{"none", stampedOption(5), nil, nil},
		{"pointer past the end", stampedOption(200), []netip.Addr{router4, otherRouter4}, nil},
		{"after NOPs", append([]byte{1, 1, 1, 1}, stampedOption(13)...), []netip.Addr{router4}, nil},
		{"after another option", append([]byte{7, 3, 4}, stampedOption(13)...), []netip.Addr{router4}, nil},
		{"end first", append([]byte{0}, stampedOption(21)...), nil, nil},
		{"times only", tsOnly, nil, nil},
		{"no options", nil, nil, nil},
		{"no length", []byte{68}, nil, ErrBadOption},
		{"length below 2", []byte{7, 1, 0, 0}, nil, ErrBadOption},
		{"length beyond", stampedOption(21)[:12], nil, ErrBadOption},
		{"timestamp too short", []byte{68, 3, 5, 0}, nil, ErrBadOption},
	} {
		got, err := Stamped(tc.options)
		if !errors.Is(err, tc.err) || !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, %v; want %v, %v", tc.name, got, err, tc.want, tc.err)
		}
	}
}

// FuzzStamped: any bytes read without panic; what is stamped lies inside
// the options and was prespecified there.
func FuzzStamped(f *testing.F) {
	f.Add(stampedOption(21))
	f.Add(append([]byte{1, 7, 3, 4}, stampedOption(13)...))
	f.Add([]byte{68, 3, 5, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Stamped(b)
		if err != nil && !errors.Is(err, ErrBadOption) {
			t.Fatalf("error %v does not wrap ErrBadOption", err)
		}
		if err != nil && got != nil {
			t.Fatalf("error %v came with stamps %v", err, got)
		}
		if len(got) > MaxPrespecified*2 || len(got)*timestampEntryLen > len(b) {
			t.Fatalf("%d stamps from %d bytes", len(got), len(b))
		}
		for _, a := range got {
			x := a.As4()
			if !bytes.Contains(b, x[:]) {
				t.Fatalf("stamp %v is not in the options % x", a, b)
			}
		}
	})
}
