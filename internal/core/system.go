package core

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/probe"
)

// System opens real sockets.
type System struct{}

var _ Probers = System{}

func (System) Raw(src netip.Addr, dst netip.AddrPort, icmp bool) (Prober, error) {
	p, err := probe.OpenRaw(src, dst, icmp)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (System) Connect(timeout time.Duration) (Prober, error) {
	return probe.NewConnectProber(timeout), nil
}

func (System) Ping(src netip.Addr, echo []hash.FiveTuple) (Prober, error) {
	p, err := probe.OpenPing(src, echo)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (System) Alias(src netip.Addr, pairs []probe.AliasPair) (Prober, error) {
	p, err := probe.OpenAlias(src, pairs)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// SystemResolver asks the system's resolver and routing table.
type SystemResolver struct {
	// Timeout bounds a name lookup; 0 means 5 s.
	Timeout time.Duration
}

var _ Resolver = SystemResolver{}

// Resolve turns the host into one address, preferring the family asked for.
func (r SystemResolver) Resolve(host string, family int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if (family == 4 && !a.Is4()) || (family == 6 && !a.Is6()) {
			return netip.Addr{}, badInput("%s is not an IPv%d address", host, family)
		}
		return a, nil
	}
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	network := map[int]string{0: "ip", 4: "ip4", 6: "ip6"}[family]
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, network, host)
	if err != nil || len(addrs) == 0 {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			err = errors.New(dnsErr.Err)
		}
		return netip.Addr{}, cannotProbe(fmt.Errorf("cannot resolve %q: %v", host, err))
	}
	return addrs[0].Unmap(), nil
}

// SourceFor asks the kernel which source address it would use toward dst,
// without sending anything (a connected UDP socket only looks up a route).
func (SystemResolver) SourceFor(dst netip.AddrPort) (netip.Addr, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		return netip.Addr{}, cannotProbe(fmt.Errorf("no route to %s: %v", dst.Addr(), err))
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}
