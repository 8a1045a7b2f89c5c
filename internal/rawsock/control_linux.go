package rawsock

import (
	"encoding/binary"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// timespecWord is the size of one field of this platform's struct
// timespec as SO_TIMESTAMPNS delivers it: 8 on 64-bit Linux, 4 on 32-bit
// (the _OLD layout x/sys/unix asks for there).
const timespecWord = int(unsafe.Sizeof(unix.Timespec{}.Sec))

// controls is what the control messages of one datagram say.
type controls struct {
	at       time.Time // kernel receive time; zero if absent
	hopLimit uint8     // IPv6 hop limit; 0 if absent
	dropped  uint32    // the socket's drop counter; 0 if absent
}

// parseControl reads the receive timestamp (a timespec of two fields of
// word bytes each), the IPv6 hop limit and the drop counter, each only
// when present and long enough.
func parseControl(oob []byte, word int) controls {
	var c controls
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return c
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 2*word:
			c.at = time.Unix(nativeInt(m.Data[:word]), nativeInt(m.Data[word:2*word]))
		case m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4:
			c.dropped = binary.NativeEndian.Uint32(m.Data[:4])
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_HOPLIMIT && len(m.Data) >= 4:
			if v := binary.NativeEndian.Uint32(m.Data[:4]); v <= 255 {
				c.hopLimit = uint8(v)
			}
		}
	}
	return c
}

// nativeInt reads a signed native-endian integer of 4 or 8 bytes.
func nativeInt(b []byte) int64 {
	if len(b) == 4 {
		return int64(int32(binary.NativeEndian.Uint32(b)))
	}
	return int64(binary.NativeEndian.Uint64(b))
}
