package probe

import (
	"net/netip"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

// handle matches one reply to its probe: by the reversed (or quoted) tuple
// and the cookie, decoded back into the probe's index. A SYN-ACK or RST
// counts only when it acknowledges a cookie of this run. A bare ACK never
// answers a probe: the server is holding an earlier connection on the flow
// (half-open after its SYN-ACK was lost, from this run or an earlier one;
// or TIME_WAIT), and the SYN-ACK for this probe did not come.
func (r *run) handle(a Arrival, receiver int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.Dropped > r.drops[receiver] {
		r.drops[receiver] = a.Dropped
	}
	if r.closed {
		return
	}
	rep := a.Reply
	switch rep.Kind {
	case packet.KindTCP:
		r.handleTCP(a)
	case packet.KindEchoReply:
		i, ok := echoIndex(r.plan.Probes, r.key, r.next, echoTuple(rep.To, rep.From, rep.EchoID), rep.EchoSeq)
		if !ok {
			r.stats.Unmatched++
			return
		}
		r.resolve(i, Answered, a, detailEchoReply)
	case packet.KindICMPError:
		var i int
		var ok bool
		if rep.QuotedProto == hash.ProtoTCP {
			i, ok = tcpIndex(r.plan.Probes, r.key, r.next, rep.Tuple, rep.QuotedSeq)
		} else {
			i, ok = echoIndex(r.plan.Probes, r.key, r.next, echoTuple(rep.Tuple.Src, rep.Tuple.Dst, rep.EchoID), rep.EchoSeq)
		}
		if !ok {
			r.stats.Unmatched++
			return
		}
		r.resolve(i, Unreachable, a, detailICMP)
	default:
		r.stats.Unmatched++
	}
}

func (r *run) handleTCP(a Arrival) {
	rep := a.Reply
	out := rep.Tuple.Reverse()
	i, ours := tcpIndex(r.plan.Probes, r.key, r.next, out, rep.Ack-1)
	if !ours && rep.Flags&packet.FlagRST != 0 {
		// Some stacks acknowledge the SYN's own sequence number in a RST.
		i, ours = tcpIndex(r.plan.Probes, r.key, r.next, out, rep.Ack)
	}
	if !ours && rep.Flags&(packet.FlagRST|packet.FlagACK) == packet.FlagRST {
		// A RST to a segment that carried an ACK (a reverse probe's
		// SYN-ACK) takes its sequence number from that ACK, where the
		// cookie is (RFC 9293, 3.10.7.1).
		i, ours = tcpIndex(r.plan.Probes, r.key, r.next, out, rep.Seq)
		ours = ours && r.plan.Probes.At(i).Kind == KindTCPSYNACK
	}
	if a.SendErr != nil {
		if !ours {
			r.stats.Unmatched++
			return
		}
		if i >= r.base {
			r.failSend(r.window.at(i-r.base), a.SendErr)
		}
		return
	}
	if rep.Flags&(packet.FlagSYN|packet.FlagRST) == 0 {
		// A bare ACK: a server still holding an earlier connection on this
		// flow answers a new SYN with an ACK of the old one. On a path that
		// drops SYN-ACKs that is the only thing that gets back, so it must
		// not pass for an answer, whichever run's SYN it acknowledges.
		r.stats.HalfOpen++
		return
	}
	if !ours {
		// A SYN-ACK or RST that acknowledges none of our cookies (a late
		// answer to an earlier run, or someone else's) answers nothing.
		r.stats.Unmatched++
		return
	}
	r.resolve(i, Answered, a, tcpDetail(rep.Flags))
}

// tcpIndex decodes a TCP cookie into the index of a sent probe of src on
// tuple t.
func tcpIndex(src Source, key cookieKey, sent int, t hash.FiveTuple, cookie uint32) (int, bool) {
	i := int(key.open(cookie, 32))
	if i >= sent {
		return 0, false
	}
	p := src.At(i)
	return i, p.Kind != KindICMPEcho && p.Tuple == t
}

// echoIndex decodes an echo sequence number into the index of a sent echo
// probe of src on tuple t.
func echoIndex(src Source, key cookieKey, sent int, t hash.FiveTuple, seq uint16) (int, bool) {
	i, ok := src.EchoIndex(t, int(key.open(uint32(seq), 16)))
	return i, ok && i < sent
}

func echoTuple(src, dst netip.Addr, id uint16) hash.FiveTuple {
	proto := hash.ProtoICMP
	if dst.Is6() && !dst.Is4In6() {
		proto = hash.ProtoICMPv6
	}
	return hash.FiveTuple{Src: src, Dst: dst, Proto: proto, SrcPort: id}
}

func tcpDetail(flags uint8) detail {
	switch {
	case flags&packet.FlagRST != 0:
		return detailRST
	case flags&(packet.FlagSYN|packet.FlagACK) == packet.FlagSYN|packet.FlagACK:
		return detailSynAck
	case flags&packet.FlagACK != 0:
		return detailACK
	}
	return detailTCP
}

// resolve records the first answer of probe i; later ones are late (after
// a timeout) or duplicates (after an answer), never a second outcome. A
// probe already collected gets the reply as late.
func (r *run) resolve(i int, o Outcome, a Arrival, d detail) {
	if i < r.base {
		r.collector.Late(r.plan.Probes.At(i))
		return
	}
	rec := r.window.at(i - r.base)
	switch rec.outcome {
	case Pending:
		rec.outcome, rec.detail = o, d
		rec.rtt = max(a.At.Sub(r.start)-rec.sent, 0)
		rec.from = a.Reply.From
		rec.replyTTL, rec.ipid = a.Reply.TTL, replyIPID(a.Reply)
		if a.Reply.Kind != packet.KindTCP {
			rec.icmpType, rec.icmpCode = a.Reply.ICMPType, a.Reply.ICMPCode
			if len(a.Reply.MPLS) > 0 || len(a.Reply.Stamped) > 0 {
				rec.rare = &rareFields{stamped: a.Reply.Stamped}
				for _, e := range a.Reply.MPLS {
					rec.rare.mpls = append(rec.rare.mpls, e.Label)
				}
			}
		}
		r.outstanding--
		r.checkFinished()
	case Timeout:
		rec.late++
	case SendFailed:
		// A reply to a probe that never left is not ours.
		r.stats.Unmatched++
	default:
		rec.dup++
	}
}

// replyIPID is the answer's IPv4 identification, or 0 when it tells
// nothing of the sender's counter: an error that copies the probe's own.
func replyIPID(r packet.Reply) uint16 {
	if r.Kind == packet.KindICMPError && r.IPID == r.QuotedIPID {
		return 0
	}
	return r.IPID
}
