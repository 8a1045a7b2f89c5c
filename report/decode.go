package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

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
	dst, err := netip.ParseAddr(doc.Target.Addr)
	if err != nil || doc.Target.Port == 0 {
		return SweepDocument{}, fmt.Errorf("%w: bad target %q port %d", ErrNotSweep, doc.Target.Addr, doc.Target.Port)
	}
	src, err := netip.ParseAddr(doc.Source)
	if err != nil || src.Is4() != dst.Is4() {
		return SweepDocument{}, fmt.Errorf("%w: bad source %q", ErrNotSweep, doc.Source)
	}
	out := SweepDocument{
		SchemaVersion: doc.SchemaVersion, Host: doc.Target.Host, Target: netip.AddrPortFrom(dst, doc.Target.Port),
		Source: src, Mode: doc.Mode,
	}
	if doc.Summary != nil {
		out.Kind, out.ExitCode = doc.Summary.Kind, doc.Summary.ExitCode
	}
	for _, p := range doc.Ports {
		st := hash.State(p.State)
		switch st {
		case hash.StateOK, hash.StateFail, hash.StateFlaky, hash.StateError:
		default:
			return SweepDocument{}, fmt.Errorf("%w: port %d has unknown state %q", ErrNotSweep, p.Sport, p.State)
		}
		if p.Sport == 0 || p.Sent < 0 || p.Received < 0 {
			return SweepDocument{}, fmt.Errorf("%w: bad port record %d", ErrNotSweep, p.Sport)
		}
		out.Ports = append(out.Ports, DocumentPort{Sport: p.Sport, State: st, Sent: p.Sent, Received: p.Received})
	}
	return out, nil
}
