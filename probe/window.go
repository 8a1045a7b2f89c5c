package probe

import (
	"fmt"
	"net/netip"
	"time"
)

// record is a probe in flight, kept small: the probe itself is recomputed
// from the plan's Source when it is collected, so a record holds only what
// happened to it. 64 bytes, so a window of rate x timeout records stays a
// few megabytes even at 50000 probes per second.
type record struct {
	from      netip.Addr    // who answered
	sent      time.Duration // when it left, since the run started
	rtt       time.Duration
	rare      *rareFields // seldom set: MPLS labels, a send error
	late, dup uint32
	ipid      uint16 // before the bytes, so the record stays 64 bytes
	outcome   Outcome
	detail    detail
	icmpType  uint8
	icmpCode  uint8
	replyTTL  uint8
	inSend    bool // the sender has not returned yet: keep it in the window
}

// rareFields are what few records need.
type rareFields struct {
	mpls    []uint32
	stamped []netip.Addr
	sendErr string
	cause   Cause
}

// detail names the answer compactly; Result.Detail spells it out.
type detail uint8

const (
	detailNone detail = iota
	detailSynAck
	detailRST
	detailACK
	detailTCP
	detailEchoReply
	detailICMP
	detailSendError
)

func (rec *record) detailText() string {
	switch rec.detail {
	case detailSynAck:
		return "syn-ack"
	case detailRST:
		return "rst"
	case detailACK:
		return "ack"
	case detailTCP:
		return "tcp"
	case detailEchoReply:
		return "echo-reply"
	case detailICMP:
		return fmt.Sprintf("icmp %d/%d", rec.icmpType, rec.icmpCode)
	case detailSendError:
		return rec.rare.sendErr
	}
	return ""
}

// window holds the records of the probes in flight, oldest first: a ring
// that grows to the run's peak (about rate x timeout) and is then reused,
// so a long run makes no garbage per probe.
type window struct {
	buf     []record
	head, n int
}

func (w *window) len() int { return w.n }

// at is the k-th oldest record.
func (w *window) at(k int) *record { return &w.buf[(w.head+k)%len(w.buf)] }

func (w *window) push(r record) {
	if w.n == len(w.buf) {
		grown := make([]record, max(64, 2*len(w.buf)))
		for k := range w.n {
			grown[k] = *w.at(k)
		}
		w.buf, w.head = grown, 0
	}
	w.buf[(w.head+w.n)%len(w.buf)] = r
	w.n++
}

// pop removes the oldest record and returns it.
func (w *window) pop() record {
	r := w.buf[w.head]
	w.buf[w.head] = record{} // let go of its pointers
	w.head = (w.head + 1) % len(w.buf)
	w.n--
	return r
}
