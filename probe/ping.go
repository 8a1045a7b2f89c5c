package probe

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// ErrPingDenied means the kernel does not allow unprivileged ICMP sockets
// for this user (net.ipv4.ping_group_range on Linux).
var ErrPingDenied = errors.New("unprivileged ICMP echo is not allowed (net.ipv4.ping_group_range)")

// appendEcho builds the echo request of probe p: its identifier, its
// cookie as the sequence number, and a payload that names the tool.
func appendEcho(dst []byte, p Probe) ([]byte, error) {
	return packet.AppendEcho(dst, packet.Echo{
		Src: p.Tuple.Src, Dst: p.Tuple.Dst, ID: p.Tuple.SrcPort, Seq: uint16(p.Cookie), Payload: echoPayload[:],
	})
}

// echoDatagram parses what an unprivileged ICMP socket hands over: the ICMP
// message without its IP header. Only echo replies are for the prober.
func echoDatagram(data []byte, from, src netip.Addr) (packet.Reply, error) {
	var rep packet.Reply
	var err error
	from = from.WithZone("")
	if src.Is4() {
		rep, err = packet.ParseICMP4(data, from, src)
	} else {
		rep, err = packet.ParseICMP6(data, from, src)
	}
	if err != nil {
		return packet.Reply{}, err
	}
	if rep.Kind != packet.KindEchoReply {
		return packet.Reply{}, ErrIgnored
	}
	return rep, nil
}

// SenderByKind sends each probe with the sender for its kind, so one engine
// runs connect probes and ping probes together.
type SenderByKind map[Kind]Sender

var _ Sender = SenderByKind(nil)

func (m SenderByKind) Send(p Probe) (time.Time, error) {
	s, ok := m[p.Kind]
	if !ok {
		return time.Time{}, fmt.Errorf("no sender for %s probes", p.Kind)
	}
	return s.Send(p)
}
