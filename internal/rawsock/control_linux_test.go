package rawsock

import (
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// timespec lays out a struct timespec of two fields of word bytes.
func timespec(sec, nsec int64, word int) []byte {
	b := make([]byte, 2*word)
	if word == 4 {
		binary.NativeEndian.PutUint32(b[0:4], uint32(int32(sec)))
		binary.NativeEndian.PutUint32(b[4:8], uint32(int32(nsec)))
		return b
	}
	binary.NativeEndian.PutUint64(b[0:8], uint64(sec))
	binary.NativeEndian.PutUint64(b[8:16], uint64(nsec))
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func TestParseControlReadsEveryMessage(t *testing.T) {
	for _, word := range []int{4, 8} { // 32-bit and 64-bit Linux
		oob := append(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(1700000000, 250, word)),
			cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, u32(61))...)
		oob = append(oob, cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(12))...)
		c := parseControl(oob, word)
		if !c.at.Equal(time.Unix(1700000000, 250)) || c.hopLimit != 61 || c.dropped != 12 {
			t.Errorf("word %d: %+v; want the kernel timestamp, hop limit 61, 12 dropped", word, c)
		}
	}
	// A truncated timestamp is not read.
	if c := parseControl(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(1, 2, 8)[:8]), 8); !c.at.IsZero() {
		t.Errorf("truncated timestamp read as %v", c.at)
	}
	if timespecWord != int(unsafe.Sizeof(uintptr(0))) {
		t.Errorf("timespec word %d on a %d-byte platform", timespecWord, unsafe.Sizeof(uintptr(0)))
	}
}

// FuzzControl builds control messages from the fuzzer's values, cut to
// its length, and checks that what is decoded is what was built: whole
// messages are read exactly, cut ones not at all, and no bytes panic.
func FuzzControl(f *testing.F) {
	f.Add(int64(5), int64(6), uint32(64), uint32(3), uint8(8), 1000, []byte{})
	f.Add(int64(-1), int64(999999999), uint32(300), uint32(0), uint8(4), 7, []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, sec, nsec int64, hops, drops uint32, wordSel uint8, cut int, junk []byte) {
		word := 8
		if wordSel%2 == 0 {
			word = 4
			sec, nsec = int64(int32(sec)), int64(int32(nsec))
		}
		ts := cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(sec, nsec, word))
		hl := cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, u32(hops))
		ov := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(drops))
		whole := append(append(append([]byte{}, ts...), hl...), ov...)
		c := parseControl(whole, word)
		if !c.at.Equal(time.Unix(sec, nsec)) || c.dropped != drops {
			t.Fatalf("decoded %+v from sec %d nsec %d drops %d", c, sec, nsec, drops)
		}
		if want := uint8(0); hops <= 255 && c.hopLimit != uint8(hops) || hops > 255 && c.hopLimit != want {
			t.Fatalf("hop limit %d from %d", c.hopLimit, hops)
		}
		// Any prefix, and any junk after it, must not panic; a prefix that
		// ends inside the first message yields nothing.
		if cut < 0 {
			cut = -cut
		}
		cut %= len(whole) + 1
		cutAt := parseControl(append(whole[:cut:cut], junk...), word)
		if cut < unix.CmsgLen(2*word) && len(junk) == 0 && !cutAt.at.IsZero() {
			t.Fatalf("a cut timestamp (%d bytes) decoded as %v", cut, cutAt.at)
		}
	})
}
