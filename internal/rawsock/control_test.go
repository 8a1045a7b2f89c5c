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
	h := (*unix.Cmsghdr)(unsafePointer(b))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func timespec(sec, nsec int64) []byte {
	b := make([]byte, 16)
	binary.NativeEndian.PutUint64(b[0:8], uint64(sec))
	binary.NativeEndian.PutUint64(b[8:16], uint64(nsec))
	return b
}

func TestControlReadsTimestampAndHopLimit(t *testing.T) {
	hops := make([]byte, 4)
	binary.NativeEndian.PutUint32(hops, 61)
	oob := append(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(1700000000, 250)), cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, hops)...)
	at, hl := control(oob)
	if !at.Equal(time.Unix(1700000000, 250)) || hl != 61 {
		t.Errorf("control = %v, %d; want the kernel timestamp and hop limit 61", at, hl)
	}
	// A truncated timestamp is not read: the receive time falls back to now.
	before := time.Now()
	at, hl = control(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(1, 2)[:8]))
	if at.Before(before) || hl != 0 {
		t.Errorf("truncated: %v, %d; want now and no hop limit", at, hl)
	}
}

// FuzzControl: no control-message bytes may panic the receive path.
func FuzzControl(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS, timespec(5, 6)))
	f.Add(cmsg(unix.IPPROTO_IPV6, unix.IPV6_HOPLIMIT, []byte{64, 0, 0, 0}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		at, _ := control(oob)
		if at.IsZero() {
			t.Fatal("no receive time")
		}
	})
}

// unsafePointer lets the test lay out a cmsghdr the way the kernel does.
func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }
