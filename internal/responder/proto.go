// Package responder is the server side of two-ended runs: `ecmpscan
// responder` watches the probe SYNs of a registered run arrive and tells
// the client which did, when, and with what TTL. Every request is
// authenticated with an HMAC of a shared token; see the README's threat
// model.
package responder

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"time"
)

// The wire: one request and one response per TCP connection, each a frame
// of a 4-byte big-endian length and that many bytes of JSON.

// MaxFrame bounds a request frame; a longer one is refused before it is
// read. MaxResponse bounds a response: a report of 4096 ports' arrivals,
// each with its first SYNs, and 64 return traces fits.
const (
	MaxFrame    = 64 << 10
	MaxResponse = 4 << 20
)

// Version is the protocol version.
const Version = 1

// The operations.
const (
	OpRegister = "register" // start watching a run's SYNs
	OpReport   = "report"   // what arrived so far, and the return traces
	OpReverse  = "reverse"  // trace the return paths of some of a run's flows
)

// Errors a request is refused with; each is wrapped with the detail.
var (
	ErrMalformed = errors.New("malformed request")
	ErrTooLarge  = errors.New("request too large")
	ErrAuth      = errors.New("not authenticated")
	ErrReplay    = errors.New("replayed or stale request")
	ErrScope     = errors.New("out of scope")
	ErrBusy      = errors.New("too busy")
	// ErrCannotProbe: the responder cannot send reverse probes (no raw
	// sockets); another attempt will not change it.
	ErrCannotProbe = errors.New("cannot send reverse probes")
)

// Request is one authenticated request.
type Request struct {
	Version int             `json:"v"`
	Op      string          `json:"op"`
	Nonce   string          `json:"nonce"` // 32 hex digits, fresh per request
	Time    int64           `json:"ts"`    // Unix milliseconds at the client
	Body    json.RawMessage `json:"body"`
	MAC     string          `json:"mac"` // hex HMAC-SHA256 of signedBytes
}

// Response answers a request; its MAC binds it to the request's nonce, so a
// forged or replayed answer is refused by the client.
type Response struct {
	Error string          `json:"error,omitempty"`
	Body  json.RawMessage `json:"body,omitempty"`
	MAC   string          `json:"mac"`
}

// Register asks the responder to watch a run's SYNs.
type Register struct {
	// Run is the client's id for the run (32 hex digits), so a register
	// retried after a lost answer finds the same run.
	Run string `json:"run"`
	// Client is the address the probes come from; it must be the
	// authenticated peer's own address.
	Client string `json:"client"`
	// Target is the probed address and port, one of the responder host's.
	Target string `json:"target"`
	// Sports are the probed source ports, as inclusive ranges.
	Sports     []PortRange `json:"sports"`
	DurationMS int64       `json:"duration_ms"`
}

// PortRange is an inclusive range of ports.
type PortRange struct{ First, Last uint16 }

// MarshalJSON writes a range as [first, last].
func (r PortRange) MarshalJSON() ([]byte, error) {
	return []byte("[" + strconv.Itoa(int(r.First)) + "," + strconv.Itoa(int(r.Last)) + "]"), nil
}

// UnmarshalJSON reads [first, last].
func (r *PortRange) UnmarshalJSON(b []byte) error {
	var v []int
	if err := json.Unmarshal(b, &v); err != nil || len(v) != 2 || v[0] < 1 || v[1] > 65535 || v[0] > v[1] {
		return fmt.Errorf("%w: a port range is [first, last] within 1-65535", ErrMalformed)
	}
	r.First, r.Last = uint16(v[0]), uint16(v[1])
	return nil
}

// Registered answers a Register.
type Registered struct {
	Run       string `json:"run"`
	ExpiresMS int64  `json:"expires_ms"` // Unix milliseconds
}

// ReportRequest asks for a run's arrivals.
type ReportRequest struct {
	Run string `json:"run"`
}

// Arrival is what the responder saw of one source port's SYNs.
type Arrival struct {
	Sport   uint16 `json:"sport"`
	Count   int    `json:"count"`    // SYNs that arrived
	FirstMS int64  `json:"first_ms"` // Unix milliseconds of the first
	// TTL is the IP TTL (hop limit) the first arrived with, which gives
	// the forward hop count.
	TTL uint8 `json:"ttl"`
	// Probes are the first MaxProbesPerPort SYNs one by one: the client
	// decodes each sequence number into its probe (the cookie), so a SYN
	// of another run on the same tuple is not taken for one of its own.
	Probes []ProbeArrival `json:"probes,omitempty"`
}

// ProbeArrival is one SYN that arrived.
type ProbeArrival struct {
	Seq uint32 `json:"seq"`
	MS  int64  `json:"ms"`  // Unix milliseconds
	TTL uint8  `json:"ttl"` // as it arrived
}

// MaxProbesPerPort bounds the SYNs recorded one by one per port (and so a
// run's memory and its report).
const MaxProbesPerPort = 8

// Report answers a ReportRequest.
type Report struct {
	Run      string    `json:"run"`
	Arrivals []Arrival `json:"arrivals"` // ports with at least one SYN, by port
	// Dropped counts packets the responder's socket dropped for want of
	// buffer space: arrivals may then be missing.
	Dropped uint32 `json:"dropped"`
	// Return is the run's return-path traces, once asked for.
	Return *ReturnTraces `json:"return,omitempty"`
}

// signedBytes is what a request's MAC covers.
func signedBytes(op, nonce string, ts int64, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ecmpscan-responder/%d\n%s\n%s\n%d\n", Version, op, nonce, ts)
	b.Write(body)
	return b.Bytes()
}

// responseBytes is what a response's MAC covers: the request's nonce, so
// it answers that request only.
func responseBytes(nonce, errText string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "ecmpscan-responder/%d response\n%s\n%s\n", Version, nonce, errText)
	b.Write(body)
	return b.Bytes()
}

func mac(token, msg []byte) []byte {
	m := hmac.New(sha256.New, token)
	m.Write(msg)
	return m.Sum(nil)
}

// NewRequest builds and signs a request.
func NewRequest(token []byte, op string, nonce [16]byte, now time.Time, body any) (Request, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return Request{}, err
	}
	r := Request{Version: Version, Op: op, Nonce: hex.EncodeToString(nonce[:]), Time: now.UnixMilli(), Body: b}
	r.MAC = hex.EncodeToString(mac(token, signedBytes(r.Op, r.Nonce, r.Time, r.Body)))
	return r, nil
}

// DecodeRequest parses a request frame's payload and checks its shape; the
// MAC is checked by a Guard.
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxFrame {
		return r, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return r, fmt.Errorf("%w: data after the request", ErrMalformed)
	}
	switch {
	case r.Version != Version:
		return r, fmt.Errorf("%w: protocol version %d, want %d", ErrMalformed, r.Version, Version)
	case r.Op != OpRegister && r.Op != OpReport && r.Op != OpReverse:
		return r, fmt.Errorf("%w: unknown op %q", ErrMalformed, r.Op)
	case !isHex(r.Nonce, 32):
		return r, fmt.Errorf("%w: nonce must be 32 hex digits", ErrMalformed)
	case !isHex(r.MAC, 64):
		return r, fmt.Errorf("%w: mac must be 64 hex digits", ErrMalformed)
	case len(r.Body) == 0:
		return r, fmt.Errorf("%w: no body", ErrMalformed)
	}
	return r, nil
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// DecodeRegister parses and checks a Register body (not its scope: the
// server checks the client is the peer and the target is its own).
func DecodeRegister(b []byte) (Register, []uint16, netip.Addr, netip.AddrPort, error) {
	var r Register
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: register: %v", ErrMalformed, err)
	}
	client, err := netip.ParseAddr(r.Client)
	if err != nil || client.Zone() != "" {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: client %q is not an address", ErrMalformed, r.Client)
	}
	target, err := netip.ParseAddrPort(r.Target)
	if err != nil || target.Port() == 0 || target.Addr().Zone() != "" {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: target %q is not ADDR:PORT", ErrMalformed, r.Target)
	}
	if client.Is4() != target.Addr().Is4() {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: client and target are of different families", ErrMalformed)
	}
	var ports []uint16
	seen := map[uint16]bool{}
	for _, pr := range r.Sports {
		for p := int(pr.First); p <= int(pr.Last); p++ {
			if !seen[uint16(p)] {
				if len(ports) == MaxPorts {
					return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: more than %d source ports", ErrScope, MaxPorts)
				}
				seen[uint16(p)] = true
				ports = append(ports, uint16(p))
			}
		}
	}
	if len(ports) == 0 {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: no source ports", ErrMalformed)
	}
	if r.DurationMS <= 0 {
		return r, nil, netip.Addr{}, netip.AddrPort{}, fmt.Errorf("%w: duration_ms must be positive", ErrMalformed)
	}
	return r, ports, client, target, nil
}

// MaxPorts bounds the source ports of one run (and so its memory).
const MaxPorts = 4096

// WriteFrame writes one frame of at most max bytes.
func WriteFrame(w io.Writer, v any, max int) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > max {
		return fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	var head [4]byte
	binary.BigEndian.PutUint32(head[:], uint32(len(b)))
	_, err = w.Write(append(head[:], b...))
	return err
}

// ReadFrame reads one frame, refusing one longer than max before reading
// its payload.
func ReadFrame(r io.Reader, max int) ([]byte, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	n := binary.BigEndian.Uint32(head[:])
	if n > uint32(max) {
		return nil, fmt.Errorf("%w: %d bytes (at most %d)", ErrTooLarge, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return b, nil
}
