package probe

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/rawsock"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// AliasPair asks whether Ask is an address of the router that holds Addr.
type AliasPair struct{ Addr, Ask netip.Addr }

// MaxAliasPairs is the most pairs one AliasProber asks: a pair's echo
// identifier is its index.
const MaxAliasPairs = 1 << 16

// AliasProber runs the prespecified-timestamp alias test (IPv4 only; IPv6
// has no such option): for each pair, an ICMP echo request to Addr whose
// timestamp option lists [Addr, Ask]. A router that honours the option
// stamps Addr, and Ask too when Ask is its own (packet.Stamped). The probe
// for pairs[i] is AliasTuples(src, pairs)[i], of kind KindICMPEcho.
type AliasProber struct {
	conn  *rawsock.Conn
	pairs []AliasPair
	set   AliasPair // the pair the socket's options now list
	buf   []byte
	opts  []byte
}

var (
	_ Sender   = (*AliasProber)(nil)
	_ Receiver = (*aliasReceiver)(nil)
)

// AliasTuples are the pairs' echo tuples: from src to each Addr, the
// identifier the pair's index.
func AliasTuples(src netip.Addr, pairs []AliasPair) []hash.FiveTuple {
	out := make([]hash.FiveTuple, len(pairs))
	for i, p := range pairs {
		out[i] = hash.FiveTuple{Src: src, Dst: p.Addr, Proto: hash.ProtoICMP, SrcPort: uint16(i)}
	}
	return out
}

// OpenAlias opens the raw ICMP socket for pairs, all IPv4. Errors as
// OpenRaw's.
func OpenAlias(src netip.Addr, pairs []AliasPair) (*AliasProber, error) {
	if !src.Is4() {
		return nil, fmt.Errorf("%w: the alias test is IPv4's, source %s", ErrBadPlan, src)
	}
	if len(pairs) > MaxAliasPairs {
		return nil, fmt.Errorf("%w: %d alias pairs, at most %d", ErrBadPlan, len(pairs), MaxAliasPairs)
	}
	for _, p := range pairs {
		if !p.Addr.Is4() || !p.Ask.Is4() {
			return nil, fmt.Errorf("%w: alias pair %s, %s is not IPv4", ErrBadPlan, p.Addr, p.Ask)
		}
	}
	conn, err := openBound(src, unix.IPPROTO_ICMP)
	if err != nil {
		return nil, err
	}
	return &AliasProber{conn: conn, pairs: pairs, buf: make([]byte, 0, 64)}, nil
}

// Send sends one pair's echo request; only the engine's send loop calls
// it, so the socket's options cannot race.
func (p *AliasProber) Send(pr Probe) (time.Time, error) {
	i := int(pr.Tuple.SrcPort)
	if pr.Kind != KindICMPEcho || i >= len(p.pairs) || p.pairs[i].Addr != pr.Tuple.Dst {
		return time.Time{}, fmt.Errorf("no alias pair for %s", pr.Tuple)
	}
	if pair := p.pairs[i]; pair != p.set {
		var err error
		if p.opts, err = packet.AppendPrespecifiedTimestamp(p.opts[:0], pair.Addr, pair.Ask); err != nil {
			return time.Time{}, err
		}
		if err := p.conn.SetIPOptions(p.opts); err != nil {
			return time.Time{}, fmt.Errorf("set timestamp option: %w", err)
		}
		p.set = pair
	}
	var err error
	if p.buf, err = appendEcho(p.buf[:0], pr); err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	return sent, p.conn.SendTo(p.buf, pr.Tuple.Dst, 0)
}

// Receivers is the one receive loop, over every ICMP message to us.
func (p *AliasProber) Receivers() []Receiver {
	return []Receiver{&aliasReceiver{conn: p.conn, buf: make([]byte, 1<<16)}}
}

// Close closes the socket.
func (p *AliasProber) Close() error { return p.conn.Close() }

type aliasReceiver struct {
	conn *rawsock.Conn
	buf  []byte
}

// Receive hands over echo replies and the errors that quote our echo
// requests; the engine matches them by identifier and cookie.
func (r *aliasReceiver) Receive(ctx context.Context) (Arrival, error) {
	pkt, err := r.conn.Receive(ctx, r.buf)
	if err != nil {
		return Arrival{}, err
	}
	rep, err := packet.ParseIPv4(pkt.Data)
	if err != nil {
		return Arrival{}, err
	}
	if rep.Kind == packet.KindTCP || (rep.Kind == packet.KindICMPError && rep.QuotedProto != hash.ProtoICMP) {
		return Arrival{}, ErrIgnored
	}
	return Arrival{Reply: rep, At: pkt.At, Dropped: pkt.Dropped}, nil
}
