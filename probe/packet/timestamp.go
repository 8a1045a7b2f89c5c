package packet

import (
	"errors"
	"fmt"
	"net/netip"
)

// The IPv4 timestamp option with prespecified addresses (RFC 791, flag 3)
// asks each listed address, in order, to stamp the packet: a router stamps
// the entry the pointer is at only when that address is one of its own,
// and then moves the pointer on. An echo request to A listing [A, B]
// comes back with both stamped when A's router also holds B: Linux stamps
// A on receipt and, building the reply, B when B is its own (the
// prespecified-timestamp alias test, after Sherry et al., IMC 2010).
const (
	optionTimestamp = 68 // IPOPT_TS
	optionEnd       = 0  // IPOPT_END
	optionNop       = 1  // IPOPT_NOOP
	// timestampPrespecified is the option's flag for address-and-time
	// entries whose addresses the sender fills in.
	timestampPrespecified = 3
	timestampEntryLen     = 8 // an IPv4 address and a 32-bit time
	timestampHeaderLen    = 4 // type, length, pointer, overflow and flag
	// MaxPrespecified is the most entries the 40 bytes of IPv4 options
	// hold.
	MaxPrespecified = (40 - timestampHeaderLen) / timestampEntryLen
)

// ErrBadOption means an IPv4 option that cannot be built or read: a wrong
// count of addresses, or lengths that do not fit.
var ErrBadOption = errors.New("packet: bad IPv4 option")

// AppendPrespecifiedTimestamp appends an IPv4 timestamp option asking
// addrs, in order, to stamp: each entry an address and a zero time, the
// pointer at the first. Its length is a multiple of 4, as the header's
// must be (8n+4 bytes).
func AppendPrespecifiedTimestamp(dst []byte, addrs ...netip.Addr) ([]byte, error) {
	if len(addrs) == 0 || len(addrs) > MaxPrespecified {
		return dst, fmt.Errorf("%w: %d prespecified addresses, want 1 to %d", ErrBadOption, len(addrs), MaxPrespecified)
	}
	for _, a := range addrs {
		if !a.Is4() || a.IsUnspecified() {
			return dst, fmt.Errorf("%w: %v", ErrInvalidAddr, a)
		}
	}
	n := timestampHeaderLen + timestampEntryLen*len(addrs)
	dst = append(dst, optionTimestamp, byte(n), timestampHeaderLen+1, timestampPrespecified)
	for _, a := range addrs {
		b := a.As4()
		dst = append(dst, b[0], b[1], b[2], b[3], 0, 0, 0, 0)
	}
	return dst, nil
}

// Stamped returns the addresses of a prespecified timestamp option in an
// IPv4 header's options (the bytes after the fixed 20) that were stamped:
// those the pointer has passed. It returns nil, nil when the options hold
// no such timestamp option; an error wrapping ErrBadOption when an option's
// length runs past the options or below its minimum.
func Stamped(options []byte) ([]netip.Addr, error) {
	for i := 0; i < len(options); {
		switch options[i] {
		case optionEnd:
			return nil, nil
		case optionNop:
			i++
			continue
		}
		if i+1 >= len(options) {
			return nil, fmt.Errorf("%w: option %d at %d has no length", ErrBadOption, options[i], i)
		}
		n := int(options[i+1])
		if n < 2 || i+n > len(options) {
			return nil, fmt.Errorf("%w: option %d at %d of length %d, %d bytes left", ErrBadOption, options[i], i, n, len(options)-i)
		}
		if options[i] == optionTimestamp {
			return stampedEntries(options[i : i+n])
		}
		i += n
	}
	return nil, nil
}

// stampedEntries reads one whole timestamp option.
func stampedEntries(opt []byte) ([]netip.Addr, error) {
	if len(opt) < timestampHeaderLen {
		return nil, fmt.Errorf("%w: timestamp option of %d bytes", ErrBadOption, len(opt))
	}
	if opt[3]&0x0f != timestampPrespecified {
		return nil, nil
	}
	// The pointer is 1-based and points at the next free entry; the
	// entries before it were stamped.
	ptr := int(opt[2])
	var out []netip.Addr
	for at := timestampHeaderLen; at+timestampEntryLen <= len(opt) && at+timestampEntryLen < ptr; at += timestampEntryLen {
		out = append(out, netip.AddrFrom4([4]byte(opt[at:at+4])))
	}
	return out, nil
}
