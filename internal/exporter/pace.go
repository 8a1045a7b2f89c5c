package exporter

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/probe"
)

// pacer spaces every probe of every sweep at least 1/rate apart: the
// exporter's limits.rate, whatever Prometheus asks of it at once. Each
// sweep's engine paces itself at its module's rate too; the slower wins.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time // the earliest the next probe may leave
	now      func() time.Time
}

func newPacer(rate float64) *pacer {
	return &pacer{interval: time.Duration(float64(time.Second) / rate), now: time.Now}
}

// wait books the next slot and waits for it, or for ctx.
func (p *pacer) wait(ctx context.Context) error {
	p.mu.Lock()
	now := p.now()
	slot := p.next
	if slot.Before(now) {
		slot = now
	}
	p.next = slot.Add(p.interval)
	p.mu.Unlock()
	d := slot.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacedProbers opens the system's probers with every send booked on the
// shared pacer, for one request's context.
type pacedProbers struct {
	core.Probers
	pacer *pacer
	ctx   context.Context
}

var _ core.Probers = pacedProbers{}

func (p pacedProbers) Raw(src netip.Addr, dst netip.AddrPort, icmp bool) (core.Prober, error) {
	return p.wrap(p.Probers.Raw(src, dst, icmp))
}

func (p pacedProbers) Connect(timeout time.Duration) (core.Prober, error) {
	return p.wrap(p.Probers.Connect(timeout))
}

func (p pacedProbers) Ping(src netip.Addr, echo []hash.FiveTuple) (core.Prober, error) {
	return p.wrap(p.Probers.Ping(src, echo))
}

func (p pacedProbers) Alias(src netip.Addr, pairs []probe.AliasPair) (core.Prober, error) {
	return p.wrap(p.Probers.Alias(src, pairs))
}

func (p pacedProbers) wrap(pr core.Prober, err error) (core.Prober, error) {
	if err != nil {
		return nil, err
	}
	return pacedProber{Prober: pr, pacer: p.pacer, ctx: p.ctx}, nil
}

// pacedProber waits for its slot before each send.
type pacedProber struct {
	core.Prober
	pacer *pacer
	ctx   context.Context
}

func (p pacedProber) Send(pr probe.Probe) (time.Time, error) {
	if err := p.pacer.wait(p.ctx); err != nil {
		return time.Time{}, err
	}
	return p.Prober.Send(pr)
}
