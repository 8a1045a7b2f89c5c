package exporter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/probe"
	"github.com/ecmpscan/ecmpscan/probe/packet"
)

var (
	client = netip.MustParseAddr("198.18.1.1")
	server = netip.MustParseAddr("198.18.2.2")
)

// fakeNet is a fabric of four members behind the exporter; the member a
// flow hashes to is its source port mod 4, and member bad (when >= 0)
// loses everything. It counts what was opened and sent.
type fakeNet struct {
	bad     int
	panics  bool
	mu      sync.Mutex
	opened  int
	sent    int
	sentAt  []time.Time
	replies chan probe.Arrival
}

func newFakeNet(bad int) *fakeNet {
	return &fakeNet{bad: bad, replies: make(chan probe.Arrival, 1<<16)}
}

func (f *fakeNet) failing(ports []uint16) int {
	n := 0
	for _, p := range ports {
		if int(p%4) == f.bad {
			n++
		}
	}
	return n
}

func (f *fakeNet) open() (core.Prober, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panics {
		panic("a bug in a prober")
	}
	f.opened++
	return f, nil
}

func (f *fakeNet) Raw(netip.Addr, netip.AddrPort, bool) (core.Prober, error) { return f.open() }
func (f *fakeNet) Connect(time.Duration) (core.Prober, error)                { return f.open() }
func (f *fakeNet) Ping(netip.Addr, []hash.FiveTuple) (core.Prober, error)    { return f.open() }
func (f *fakeNet) Alias(netip.Addr, []probe.AliasPair) (core.Prober, error)  { return f.open() }

func (f *fakeNet) Send(p probe.Probe) (time.Time, error) {
	now := time.Now()
	f.mu.Lock()
	f.sent++
	f.sentAt = append(f.sentAt, now)
	f.mu.Unlock()
	switch {
	case p.Kind == probe.KindICMPEcho:
		f.replies <- probe.Arrival{At: now, Reply: packet.Reply{Kind: packet.KindEchoReply, From: p.Tuple.Dst, To: p.Tuple.Src,
			EchoID: p.Tuple.SrcPort, EchoSeq: uint16(p.Cookie), TTL: 62}}
	case int(p.Tuple.SrcPort%4) != f.bad:
		f.replies <- probe.Arrival{At: now, Reply: packet.Reply{Kind: packet.KindTCP, From: p.Tuple.Dst, To: p.Tuple.Src,
			Tuple: p.Tuple.Reverse(), Ack: p.Cookie + 1, Flags: packet.FlagSYN | packet.FlagACK, TTL: 62}}
	}
	return now, nil
}

func (f *fakeNet) Receive(ctx context.Context) (probe.Arrival, error) {
	select {
	case a := <-f.replies:
		return a, nil
	case <-ctx.Done():
		return probe.Arrival{}, ctx.Err()
	}
}

func (f *fakeNet) Receivers() []probe.Receiver { return []probe.Receiver{f} }
func (f *fakeNet) Close() error                { return nil }

// fakeResolver resolves names from a table; the source is the client.
type fakeResolver map[string]netip.Addr

func (r fakeResolver) Resolve(host string, _ int) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, nil
	}
	if a, ok := r[host]; ok {
		return a, nil
	}
	return netip.Addr{}, errors.New("no such host")
}

func (fakeResolver) SourceFor(netip.AddrPort) (netip.Addr, error) { return client, nil }

const testConfig = `
modules:
  mysql:
    port: 3306
    sport: 30000-30063
    count: 3
    rate: 500
    timeout: 200ms
    icmp: 4
    mode: raw
  slow:
    sport: 30000-34095
    count: 3
    rate: 100
  ports:
    port: 3306
    sport: 30000-30007
    timeout: 200ms
    export_ports: true
allow: [198.18.0.0/15, 2001:db8::/32]
limits:
  concurrent: 2
  rate: 5000
`

func newTestExporter(t *testing.T, f *fakeNet) *Exporter {
	t.Helper()
	cfg, err := ParseConfig("test.yml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	e := New(cfg)
	e.Probers = f
	e.Resolver = fakeResolver{"db.lab": server, "outside.example": netip.MustParseAddr("192.0.2.7")}
	return e
}

func get(e *Exporter, query string, header ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodGet, "/probe?"+query, nil)
	if len(header) == 2 {
		r.Header.Set(header[0], header[1])
	}
	w := httptest.NewRecorder()
	e.Handler().ServeHTTP(w, r)
	return w
}

func TestProbeMetrics(t *testing.T) {
	for _, bad := range []int{-1, 1} {
		synctest.Test(t, func(t *testing.T) {
			f := newFakeNet(bad)
			e := newTestExporter(t, f)
			w := get(e, "target=198.18.2.2&module=mysql", "X-Prometheus-Scrape-Timeout-Seconds", "10")
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			body := w.Body.String()
			ports, _ := core.ParsePorts("30000-30063")
			want := []string{
				`ecmpscan_ports{state="fail"} ` + itoa(f.failing(ports)),
				`ecmpscan_ports{state="error"} 0`,
				`ecmpscan_icmp_success 1`,
				"probe_duration_seconds ",
			}
			if bad < 0 {
				want = append(want, "probe_success 1", `ecmpscan_verdict{kind="healthy"} 1`)
			} else {
				want = append(want, "probe_success 0", `ecmpscan_verdict{kind="ecmp-fault"} 1`, `ecmpscan_width_estimate{bound="best"} 4`,
					"ecmpscan_fail_ratio 0.25")
			}
			for _, s := range want {
				if !strings.Contains(body, s) {
					t.Errorf("no %q in\n%s", s, body)
				}
			}
			if strings.Contains(body, "ecmpscan_port_up") {
				t.Error("per-port series without export_ports")
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestExportPorts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExporter(t, newFakeNet(1))
		body := get(e, "target=db.lab&module=ports").Body.String()
		for _, s := range []string{`ecmpscan_port_up{sport="30001"} 0`, `ecmpscan_port_up{sport="30002"} 1`} {
			if !strings.Contains(body, s) {
				t.Errorf("no %q in\n%s", s, body)
			}
		}
	})
}

// Bad requests and targets outside allow are refused with a reason, and
// nothing is opened or sent.
func TestProbeRefusals(t *testing.T) {
	for _, c := range []struct {
		query, header string
		code          int
		reason        string
	}{
		{"module=mysql", "", 400, "missing target"},
		{"target=198.18.2.2", "", 400, "missing module"},
		{"target=198.18.2.2&module=nope", "", 400, `unknown module "nope"`},
		{"target=198.18.2.2:99999&module=mysql", "", 400, "want 1-65535"},
		{"target=198.18.2.2&target=198.18.2.3&module=mysql", "", 400, "once each"},
		{"target=198.18.2.2&module=mysql", "soon", 400, "Scrape-Timeout"},
		{"target=192.0.2.1&module=mysql", "", 403, "outside allow"},
		{"target=[2001:db9::1]:80&module=mysql", "", 403, "outside allow"},
		{"target=outside.example&module=mysql", "", 403, "resolves to 192.0.2.7, outside allow"},
		{"target=198.18.2.2&module=slow", "", 400, "raise scrape_timeout"},
	} {
		t.Run(c.query, func(t *testing.T) {
			f := newFakeNet(-1)
			e := newTestExporter(t, f)
			var w *httptest.ResponseRecorder
			if c.header != "" {
				w = get(e, c.query, "X-Prometheus-Scrape-Timeout-Seconds", c.header)
			} else {
				w = get(e, c.query)
			}
			if w.Code != c.code || !strings.Contains(w.Body.String(), c.reason) {
				t.Errorf("got %d %q, want %d with %q", w.Code, w.Body, c.code, c.reason)
			}
			if f.opened != 0 || f.sent != 0 {
				t.Errorf("opened %d probers and sent %d probes for a refused request", f.opened, f.sent)
			}
		})
	}
}

// More sweeps than limits.concurrent wait, then get 503 within the
// deadline.
func TestProbeBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(-1)
		e := newTestExporter(t, f)
		for range cap(e.sem) {
			e.sem <- struct{}{}
		}
		start := time.Now()
		w := get(e, "target=198.18.2.2&module=mysql", "X-Prometheus-Scrape-Timeout-Seconds", "3")
		if w.Code != http.StatusServiceUnavailable || time.Since(start) > 3*time.Second || f.sent != 0 {
			t.Errorf("got %d after %s, %d sent; want 503 within the deadline", w.Code, time.Since(start), f.sent)
		}
	})
}

// A panic in one probe answers that scrape with 500; the next is served.
func TestProbePanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet(-1)
		e := newTestExporter(t, f)
		f.panics = true
		if w := get(e, "target=198.18.2.2&module=mysql"); w.Code != http.StatusInternalServerError {
			t.Fatalf("got %d", w.Code)
		}
		f.panics = false
		if w := get(e, "target=198.18.2.2&module=mysql"); w.Code != http.StatusOK {
			t.Errorf("after a panic: %d %s", w.Code, w.Body)
		}
	})
}

func TestProbeDebug(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newTestExporter(t, newFakeNet(2))
		body := get(e, "target=198.18.2.2&module=mysql&debug=true").Body.String()
		for _, s := range []string{"verdict:", "metrics:", `ecmpscan_ports{state="fail"} 16`} {
			if !strings.Contains(body, s) {
				t.Errorf("no %q in\n%s", s, body)
			}
		}
	})
}

// Every probe of every sweep goes through one pacer: however many sweeps
// run at once, no two probes leave closer than 1/limits.rate.
func TestPacerSpacesAllSweeps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPacer(1000)
		var mu sync.Mutex
		var at []time.Time
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					if err := p.wait(context.Background()); err != nil {
						t.Error(err)
					}
					mu.Lock()
					at = append(at, time.Now())
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		first, last := at[0], at[0]
		for _, x := range at {
			first, last = minTime(first, x), maxTime(last, x)
		}
		// 400 probes at 1000/s take at least 399 ms.
		if d := last.Sub(first); d < 399*time.Millisecond {
			t.Errorf("400 probes in %s: faster than 1000/s", d)
		}
	})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
