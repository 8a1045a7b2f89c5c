package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
)

// ErrNotSweep is returned for bytes that are not a sweep document this
// version can read.
var ErrNotSweep = errors.New("not a sweep JSON document (ecmpscan sweep --format json)")

// SweepDocument is a sweep document read back (hash --fit, scripts): the
// contract keys, checked.
type SweepDocument struct {
	SchemaVersion int
	Host          string
	Target        netip.AddrPort
	Source        netip.Addr
	Mode          string
	Ports         []DocumentPort
	Kind          Kind
	ExitCode      int
}

// DocumentPort is one port of a read-back sweep.
type DocumentPort struct {
	Sport          uint16
	State          hash.State
	Sent, Received int
}

// DecodeSweep reads a sweep document written by Render with FormatJSON. It
// is the encoder's own struct read back, so the two cannot drift apart.
func DecodeSweep(data []byte) (SweepDocument, error) {
	var doc jsonDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return SweepDocument{}, fmt.Errorf("%w: %v", ErrNotSweep, err)
	}
	if doc.SchemaVersion < 1 || doc.SchemaVersion > SchemaVersion || doc.Type != "" {
		return SweepDocument{}, fmt.Errorf("%w: schema_version %d (this ecmpscan reads 1 to %d)", ErrNotSweep, doc.SchemaVersion, SchemaVersion)
	}
	target, src, err := decodeEnds(doc.Target, doc.Source)
	if err != nil {
		return SweepDocument{}, fmt.Errorf("%w: %v", ErrNotSweep, err)
	}
	out := SweepDocument{SchemaVersion: doc.SchemaVersion, Host: doc.Target.Host, Target: target, Source: src, Mode: doc.Mode}
	if doc.Summary != nil {
		out.Kind, out.ExitCode = doc.Summary.Kind, doc.Summary.ExitCode
	}
	for _, p := range doc.Ports {
		st := hash.State(p.State)
		if !knownState(st) {
			return SweepDocument{}, fmt.Errorf("%w: port %d has unknown state %q", ErrNotSweep, p.Sport, p.State)
		}
		if p.Sport == 0 || p.Sent < 0 || p.Received < 0 {
			return SweepDocument{}, fmt.Errorf("%w: bad port record %d", ErrNotSweep, p.Sport)
		}
		out.Ports = append(out.Ports, DocumentPort{Sport: p.Sport, State: st, Sent: p.Sent, Received: p.Received})
	}
	return out, nil
}

// decodeEnds reads a document's target and source: addresses of one
// family, and the target's port.
func decodeEnds(t jsonTarget, source string) (netip.AddrPort, netip.Addr, error) {
	dst, err := netip.ParseAddr(t.Addr)
	if err != nil || t.Port == 0 {
		return netip.AddrPort{}, netip.Addr{}, fmt.Errorf("bad target %q port %d", t.Addr, t.Port)
	}
	src, err := netip.ParseAddr(source)
	if err != nil || src.Is4() != dst.Is4() {
		return netip.AddrPort{}, netip.Addr{}, fmt.Errorf("bad source %q", source)
	}
	return netip.AddrPortFrom(dst, t.Port), src, nil
}

// knownState reports whether a port or flow state is one this version
// writes.
func knownState(st hash.State) bool {
	switch st {
	case hash.StateOK, hash.StateFail, hash.StateFlaky, hash.StateError:
		return true
	}
	return false
}

// ErrNotTrace is returned for bytes that are not a trace document this
// version can read.
var ErrNotTrace = errors.New("not a trace JSON document (ecmpscan trace --format json)")

// maxDecodedHops bounds the hops of one flow read back: more than any
// trace's max TTL allows.
const maxDecodedHops = 255

// maxDecodedIDs bounds one hop's IP ID samples (one per probe), and
// maxSampleUS their arrival: a day after the start.
const (
	maxDecodedIDs = 1024
	maxSampleUS   = 24 * 3600 * 1e6
	// maxDecodedAliasGroups bounds an alias test's groups, and each
	// group's addresses: the test asks at most aliasTestMaxPairs.
	maxDecodedAliasGroups = aliasTestMaxPairs
)

// DecodeTrace reads back the evidence of a trace document written by
// RenderTrace with FormatJSON: the target, the flows and their hops, and
// what a responder saw arrive, so that a saved trace can be diagnosed
// again. The diagnosis in the document is not read: it is recomputed.
func DecodeTrace(data []byte) (Trace, error) {
	var doc traceDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return Trace{}, fmt.Errorf("%w: %v", ErrNotTrace, err)
	}
	if doc.SchemaVersion < 1 || doc.SchemaVersion > SchemaVersion || doc.Type != "trace" {
		return Trace{}, fmt.Errorf("%w: schema_version %d type %q", ErrNotTrace, doc.SchemaVersion, doc.Type)
	}
	target, src, err := decodeEnds(doc.Target, doc.Source)
	if err != nil {
		return Trace{}, fmt.Errorf("%w: %v", ErrNotTrace, err)
	}
	dst := target.Addr()
	t := Trace{Host: doc.Target.Host, Target: target, Source: src, Mode: doc.Mode,
		MaxTTL: doc.MaxTTL, ProbesPerHop: doc.ProbesPerHop, Count: doc.Count, Interrupted: doc.Interrupted,
		NotProbed: doc.NotProbed}
	if t.Gateway, err = optionalAddr(doc.Gateway, "gateway"); err != nil {
		return Trace{}, err
	}
	if u := doc.Untraced; u != nil {
		if t.Untraced, err = decodeUntraced(*u); err != nil {
			return Trace{}, err
		}
	}
	if l := doc.Looked; l != nil {
		if t.Looked, err = decodeLooked(*l, t.Untraced, dst.Is4()); err != nil {
			return Trace{}, err
		}
	}
	if a := doc.AliasTest; a != nil {
		if t.Aliases, err = decodeAliasTest(*a); err != nil {
			return Trace{}, err
		}
	}
	if l := doc.RateLimitTest; l != nil {
		if t.RateLimits, err = decodeRateLimitTest(*l, dst.Is4()); err != nil {
			return Trace{}, err
		}
	}
	// Samples' arrivals are kept relative to the start, whatever it was.
	origin := time.Unix(0, 0).UTC()
	if st, err := time.Parse(time.RFC3339Nano, doc.Started); err == nil {
		t.Started, origin = st, st
	}
	seen := map[uint16]bool{}
	for _, fj := range doc.Flows {
		f, err := decodeFlow(fj, dst, origin)
		if err != nil {
			return Trace{}, err
		}
		if seen[f.Sport] {
			return Trace{}, fmt.Errorf("%w: source port %d twice", ErrNotTrace, f.Sport)
		}
		seen[f.Sport] = true
		t.Flows = append(t.Flows, f)
		if fj.Arrived != nil {
			t.twoEnded().Arrived[f.Sport] = max(*fj.Arrived, 0)
		}
	}
	if err := t.lookedAmong(seen); err != nil {
		return Trace{}, err
	}
	if r := doc.Responder; r != nil && r.Gateway != "" {
		gw, err := optionalAddr(&r.Gateway, "responder gateway")
		if err != nil {
			return Trace{}, err
		}
		t.twoEnded().Gateway = gw
	}
	return t, nil
}

// lookedAmong checks that the second look's flows are the trace's: among
// its traced flows (added to with those not probed).
func (t Trace) lookedAmong(traced map[uint16]bool) error {
	if t.Looked == nil {
		return nil
	}
	for _, p := range t.NotProbed {
		traced[p] = true
	}
	for _, p := range t.Looked.Ports {
		if !traced[p] {
			return fmt.Errorf("%w: looked at source port %d, which is no flow of the trace", ErrNotTrace, p)
		}
	}
	return nil
}

// decodeUnseen checks the second look's picks and unseen flows: both or
// neither (traces recorded before they were counted), the picks no more
// than a sweep has source ports, the unseen ones no more than it left
// untraced and did not see crossing (u).
func decodeUnseen(l lookedJSON, all, u Untraced) (int, *Untraced, error) {
	switch {
	case l.Picked == nil && l.Unseen == nil:
		return 0, nil, nil
	case l.Picked == nil || l.Unseen == nil:
		return 0, nil, fmt.Errorf("%w: looked picked and unseen go together", ErrNotTrace)
	case *l.Picked < 0 || *l.Picked > 65535:
		return 0, nil, fmt.Errorf("%w: looked picked %d", ErrNotTrace, *l.Picked)
	}
	unseen, err := decodeUntraced(*l.Unseen)
	if err != nil {
		return 0, nil, err
	}
	if unseen.OK > all.OK-u.OK || unseen.Fail > all.Fail-u.Fail || unseen.Flaky > all.Flaky-u.Flaky {
		return 0, nil, fmt.Errorf("%w: looked unseen %+v beyond the untraced %+v less the %+v seen crossing", ErrNotTrace, unseen, all, u)
	}
	return *l.Picked, &unseen, nil
}

// ascending reports whether ports rise strictly: each one once.
func ascending(ports []uint16) bool {
	for i := 1; i < len(ports); i++ {
		if ports[i] <= ports[i-1] {
			return false
		}
	}
	return true
}

// decodeUntraced checks the untraced counts: no more than a sweep has
// source ports.
func decodeUntraced(u untracedJSON) (Untraced, error) {
	for _, n := range []int{u.OK, u.Fail, u.Flaky} {
		if n < 0 || n > 65535 {
			return Untraced{}, fmt.Errorf("%w: untraced count %d", ErrNotTrace, n)
		}
	}
	return Untraced(u), nil
}

// twoEnded is what the trace read of its responder, made on first use.
func (t *Trace) twoEnded() *TwoEnded {
	if t.TwoEnded == nil {
		t.TwoEnded = &TwoEnded{Arrived: map[uint16]int{}}
	}
	return t.TwoEnded
}

// optionalAddr reads an address the document may leave out (nil or
// empty: invalid).
func optionalAddr(s *string, what string) (netip.Addr, error) {
	if s == nil || *s == "" {
		return netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(*s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %s: %v", ErrNotTrace, what, err)
	}
	return a, nil
}

func decodeFlow(fj traceFlowJSON, dst netip.Addr, origin time.Time) (FlowTrace, error) {
	st := hash.State(fj.State)
	if !knownState(st) {
		return FlowTrace{}, fmt.Errorf("%w: flow %d has unknown state %q", ErrNotTrace, fj.Sport, fj.State)
	}
	if fj.Sport == 0 || fj.Sent < 0 || fj.Received < 0 || fj.Received > fj.Sent || fj.ReachedTTL < 0 {
		return FlowTrace{}, fmt.Errorf("%w: bad flow record %d", ErrNotTrace, fj.Sport)
	}
	f := FlowTrace{Sport: fj.Sport, State: st, Sent: fj.Sent, Received: fj.Received, ReachedTTL: fj.ReachedTTL}
	var err error
	if f.Hops, err = decodeHops(fj.Hops, dst.Is4(), origin); err != nil {
		return FlowTrace{}, fmt.Errorf("flow %d: %w", fj.Sport, err)
	}
	if f.ReturnHops, err = decodeHops(fj.ReturnHops, dst.Is4(), origin); err != nil {
		return FlowTrace{}, fmt.Errorf("flow %d return: %w", fj.Sport, err)
	}
	return f, nil
}

// decodeHops reads hops TTL 1, 2, ... in order, of one address family.
func decodeHops(hs []traceHopJSON, v4 bool, origin time.Time) ([]TraceHop, error) {
	if len(hs) > maxDecodedHops {
		return nil, fmt.Errorf("%w: %d hops", ErrNotTrace, len(hs))
	}
	var out []TraceHop
	for i, hj := range hs {
		h := TraceHop{TTL: hj.TTL, Probes: hj.Probes, Answers: hj.Answers, Reached: hj.Reached,
			ICMPType: hj.ICMPType, ICMPCode: hj.ICMPCode, MPLS: hj.MPLS}
		if hj.TTL != i+1 || hj.Probes < 0 || hj.Answers < 0 {
			return nil, fmt.Errorf("%w: hop %d: ttl %d probes %d answers %d", ErrNotTrace, i+1, hj.TTL, hj.Probes, hj.Answers)
		}
		parse := func(s string) (netip.Addr, error) {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Is4() != v4 || a.Zone() != "" {
				return netip.Addr{}, fmt.Errorf("%w: hop %d: bad address %q", ErrNotTrace, i+1, s)
			}
			return a, nil
		}
		var err error
		if hj.Addr != nil {
			if h.Addr, err = parse(*hj.Addr); err != nil {
				return nil, err
			}
		} else if h.Reached || len(hj.Others) > 0 {
			return nil, fmt.Errorf("%w: hop %d: an answer without an address", ErrNotTrace, i+1)
		}
		for _, o := range hj.Others {
			a, err := parse(o)
			if err != nil {
				return nil, err
			}
			h.Others = append(h.Others, a)
		}
		if len(hj.IPIDs) > maxDecodedIDs {
			return nil, fmt.Errorf("%w: hop %d: %d IP IDs", ErrNotTrace, i+1, len(hj.IPIDs))
		}
		for _, sj := range hj.IPIDs {
			a, err := parse(sj.Addr)
			if err != nil {
				return nil, err
			}
			if sj.AtUS < 0 || sj.AtUS > maxSampleUS {
				return nil, fmt.Errorf("%w: hop %d: IP ID arrival %d us", ErrNotTrace, i+1, sj.AtUS)
			}
			h.IDs = append(h.IDs, IDSample{Addr: a, At: origin.Add(time.Duration(sj.AtUS) * time.Microsecond), ID: sj.ID, TTL: sj.TTL})
		}
		if hj.RTTMS != nil && *hj.RTTMS >= 0 && *hj.RTTMS < 3.6e6 {
			h.RTT = time.Duration(*hj.RTTMS * float64(time.Millisecond))
		}
		out = append(out, h)
	}
	return out, nil
}

// maxLookAddrs bounds a second look's addresses: one router's, or the
// routers an unseen member sits behind, at one TTL.
const maxLookAddrs = 1024

// decodeLooked checks the second look: a TTL, addresses of the target's
// family, and no more untraced flows seen crossing than were left
// untraced in all.
func decodeLooked(l lookedJSON, all Untraced, v4 bool) (*Looked, error) {
	if l.TTL < 1 || l.TTL > 255 {
		return nil, fmt.Errorf("%w: looked ttl %d", ErrNotTrace, l.TTL)
	}
	if len(l.Addrs) == 0 || len(l.Addrs) > maxLookAddrs {
		return nil, fmt.Errorf("%w: looked at %d addresses", ErrNotTrace, len(l.Addrs))
	}
	u, err := decodeUntraced(l.Untraced)
	if err != nil {
		return nil, err
	}
	if u.OK > all.OK || u.Fail > all.Fail || u.Flaky > all.Flaky {
		return nil, fmt.Errorf("%w: looked untraced %+v beyond the untraced %+v", ErrNotTrace, u, all)
	}
	out := &Looked{Look: Look{TTL: l.TTL}, Untraced: u}
	if out.Picked, out.Unseen, err = decodeUnseen(l, all, u); err != nil {
		return nil, err
	}
	if l.Sports != nil && (out.Unseen == nil || len(l.Sports) != out.Picked || !ascending(l.Sports)) {
		return nil, fmt.Errorf("%w: looked sports %d, not its %d picks in order", ErrNotTrace, len(l.Sports), out.Picked)
	}
	out.Ports = l.Sports
	for _, s := range l.Addrs {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Is4() != v4 || a.Zone() != "" {
			return nil, fmt.Errorf("%w: looked address %q", ErrNotTrace, s)
		}
		out.Addrs = append(out.Addrs, a)
	}
	return out, nil
}

// decodeAliasTest checks the alias test's counts (each within the one
// before) and its groups: two or more IPv4 addresses each, none twice.
func decodeAliasTest(a aliasTestJSON) (*AliasTest, error) {
	if a.Asked < 0 || a.Answered < 0 || a.Honoured < 0 || a.Answered > a.Asked || a.Honoured > a.Answered {
		return nil, fmt.Errorf("%w: alias test asked %d, answered %d, honoured %d", ErrNotTrace, a.Asked, a.Answered, a.Honoured)
	}
	groups, err := decodeAliasGroups(a.Groups, true)
	if err != nil {
		return nil, err
	}
	return &AliasTest{Asked: a.Asked, Answered: a.Answered, Honoured: a.Honoured, Groups: groups}, nil
}

// decodeRateLimitTest checks the rate-limit alias test's counts (each
// within the one before) and its groups: two or more addresses of the
// trace's family each, none twice.
func decodeRateLimitTest(l rateLimitTestJSON, is4 bool) (*RateLimitTest, error) {
	if l.Rounds < 0 || l.Rounds > maxDecodedAliasGroups || l.Drained < 0 || l.Drained > l.Rounds || l.Silenced < 0 || l.Silenced > l.Drained {
		return nil, fmt.Errorf("%w: rate-limit test rounds %d, drained %d, silenced %d", ErrNotTrace, l.Rounds, l.Drained, l.Silenced)
	}
	groups, err := decodeAliasGroups(l.Groups, is4)
	if err != nil {
		return nil, err
	}
	return &RateLimitTest{Rounds: l.Rounds, Drained: l.Drained, Silenced: l.Silenced, Groups: groups}, nil
}

// decodeAliasGroups checks an alias test's groups: two or more addresses
// each, IPv4 ones or IPv6 ones as is4 says, none twice.
func decodeAliasGroups(groups [][]string, is4 bool) ([][]netip.Addr, error) {
	if len(groups) > maxDecodedAliasGroups {
		return nil, fmt.Errorf("%w: %d alias groups", ErrNotTrace, len(groups))
	}
	var out [][]netip.Addr
	seen := map[netip.Addr]bool{}
	for _, g := range groups {
		if len(g) < 2 || len(g) > maxDecodedAliasGroups {
			return nil, fmt.Errorf("%w: an alias group of %d addresses", ErrNotTrace, len(g))
		}
		var group []netip.Addr
		for _, s := range g {
			x, err := netip.ParseAddr(s)
			if err != nil || x.Is4() != is4 || x.Zone() != "" || seen[x] {
				return nil, fmt.Errorf("%w: alias group address %q", ErrNotTrace, s)
			}
			seen[x] = true
			group = append(group, x)
		}
		out = append(out, group)
	}
	return out, nil
}
