package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ecmpscan/ecmpscan/internal/core"
	"github.com/ecmpscan/ecmpscan/internal/route"
	"github.com/ecmpscan/ecmpscan/report"
)

// Exporter answers Prometheus's probes.
type Exporter struct {
	cfg   Config
	pacer *pacer
	sem   chan struct{}
	self  *selfMetrics
	reg   *prometheus.Registry
	// Probers and Resolver are the outside world (core.System and
	// core.SystemResolver; tests inject fakes).
	Probers  core.Probers
	Resolver core.Resolver
	// FirstHop asks the routing table which gateway a flow leaves by
	// (route.Lookup by default), to name a silent first hop; nil: not
	// asked.
	FirstHop route.LookupFunc
	// Log gets one line per refused request and per failed probe.
	Log func(string)
}

// Deadline handling, as blackbox_exporter's: the scrape's own timeout
// less a margin for the answer to get back, or defaultDeadline when
// Prometheus did not say.
const (
	deadlineMargin  = 500 * time.Millisecond
	defaultDeadline = 10 * time.Second
	MaxDeadline     = 5 * time.Minute
)

// New builds an exporter for a validated config.
func New(cfg Config) *Exporter {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Exporter{cfg: cfg, pacer: newPacer(cfg.Limits.Rate), sem: make(chan struct{}, cfg.Limits.Concurrent),
		self: newSelfMetrics(reg, cfg.ModuleNames()), reg: reg,
		Probers: core.System{}, Resolver: core.SystemResolver{}, FirstHop: route.Lookup, Log: func(string) {}}
}

// Handler serves /probe, /metrics and /-/healthy.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/probe", e.probe)
	mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/-/healthy", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "Healthy") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "ecmpscan exporter: /probe?target=HOST:PORT&module=NAME, /metrics, /-/healthy")
	})
	return mux
}

// refuse answers a request that is not run, and counts it.
func (e *Exporter) refuse(w http.ResponseWriter, r *http.Request, code int, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	e.self.rejected.WithLabelValues(reason).Inc()
	e.Log(fmt.Sprintf("refused %s %s: %s", r.RemoteAddr, r.URL.RawQuery, msg))
	http.Error(w, msg, code)
}

// request is a /probe request, checked.
type request struct {
	module   Module
	host     string
	port     uint16
	addr     netip.Addr // valid when the target is a literal address
	deadline time.Duration
	debug    bool
}

// parse checks a /probe request; an error is the one-line reason for a 400.
func (e *Exporter) parse(r *http.Request) (request, error) {
	q := r.URL.Query()
	var req request
	name, target := q.Get("module"), q.Get("target")
	if len(q["module"]) > 1 || len(q["target"]) > 1 {
		return req, errors.New("give target and module once each")
	}
	mod, ok := e.cfg.Modules[name]
	switch {
	case target == "":
		return req, errors.New("missing target=HOST[:PORT]")
	case name == "":
		return req, errors.New("missing module=NAME")
	case !ok:
		return req, fmt.Errorf("unknown module %q", name)
	}
	host, port, err := core.ParseTarget(target, int(mod.Port), 0)
	if err != nil {
		return req, err
	}
	req = request{module: mod, host: host, port: port, debug: q.Get("debug") == "true"}
	if a, err := netip.ParseAddr(host); err == nil {
		req.addr = a.Unmap()
	}
	req.deadline = defaultDeadline
	if h := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); h != "" {
		s, err := strconv.ParseFloat(h, 64)
		if err != nil || !(s > 0) {
			return req, fmt.Errorf("bad X-Prometheus-Scrape-Timeout-Seconds %q", h)
		}
		req.deadline = min(time.Duration(s*float64(time.Second)), MaxDeadline)
	}
	req.deadline -= deadlineMargin
	return req, nil
}

func (e *Exporter) probe(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A panic in one probe answers that scrape, not the exporter.
		if v := recover(); v != nil {
			e.Log(fmt.Sprintf("panic in probe %s: %v\n%s", r.URL.RawQuery, v, debug.Stack()))
			e.self.rejected.WithLabelValues(rejectPanic).Inc()
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	}()
	start := time.Now()
	req, err := e.parse(r)
	if err != nil {
		e.refuse(w, r, http.StatusBadRequest, rejectBadRequest, "%v", err)
		return
	}
	if req.addr.IsValid() && !e.cfg.Allowed(req.addr) {
		e.refuse(w, r, http.StatusForbidden, rejectForbidden, "target %s is outside allow", req.addr)
		return
	}
	cfg := e.sweepConfig(req)
	need := sweepTime(cfg)
	if need > req.deadline {
		e.refuse(w, r, http.StatusBadRequest, rejectTooSlow, "module %s takes about %s, more than the %s the scrape leaves: raise scrape_timeout, or lower count or sport",
			req.module.Name, need.Round(100*time.Millisecond), req.deadline.Round(100*time.Millisecond))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), req.deadline)
	defer cancel()
	// Wait for a sweep slot as long as the sweep still fits after it.
	slot, cancelSlot := context.WithTimeout(ctx, req.deadline-need)
	defer cancelSlot()
	select {
	case e.sem <- struct{}{}:
	case <-slot.Done():
		e.refuse(w, r, http.StatusServiceUnavailable, rejectBusy, "%d sweeps already running; try again", cap(e.sem))
		return
	}
	defer func() { <-e.sem }()
	e.self.inFlight.Inc()
	defer e.self.inFlight.Dec()
	res, forbidden := e.sweep(ctx, req, cfg)
	if forbidden != nil {
		e.refuse(w, r, http.StatusForbidden, rejectForbidden, "%v", forbidden)
		return
	}
	res.duration = time.Since(start)
	e.answer(w, r, req, res)
}

// sweepConfig is the core's sweep of a module: its rate capped by the
// exporter's.
func (e *Exporter) sweepConfig(req request) core.SweepConfig {
	mod := req.module
	cfg := core.SweepConfig{
		Target:  core.Target{Host: req.host, Port: req.port},
		Probing: core.Probing{Ports: mod.Sports, Count: mod.Count, Rate: min(mod.Rate, e.cfg.Limits.Rate), Timeout: mod.Timeout},
		Mode:    mod.Mode, ICMP: mod.ICMP,
	}
	if mod.Trace {
		// No second look at rate-limited hops (Patience 0): a scrape has
		// a deadline, and the next scrape looks again.
		cfg.Trace = &core.TraceOptions{MaxTTL: traceMaxTTL, HopProbes: traceHopProbes, Flows: core.DefaultTracedFlows}
	}
	return cfg
}

// sweep runs the module's sweep of the target through the core. A target
// name that resolves outside allow is refused before anything is sent.
func (e *Exporter) sweep(ctx context.Context, req request, cfg core.SweepConfig) (probeResult, error) {
	mod := req.module
	guard := &allowResolver{Resolver: e.Resolver, cfg: e.cfg}
	env := core.Env{Probers: pacedProbers{Probers: e.Probers, pacer: e.pacer, ctx: ctx}, Resolver: guard, FirstHop: e.FirstHop,
		Notice: func(s string) { e.Log(fmt.Sprintf("probe %s module %s: %s", req.host, mod.Name, s)) }}
	sw, err := core.Sweep(ctx, cfg, env)
	switch {
	case guard.refused != nil:
		return probeResult{}, guard.refused
	case err != nil:
		e.Log(fmt.Sprintf("probe %s module %s: %v", req.host, mod.Name, err))
		return probeResult{failed: err.Error()}, nil
	}
	return probeResult{sweep: &sw}, nil
}

// allowResolver refuses a name that resolves outside allow: the core
// resolves before it opens a socket, so nothing is sent.
type allowResolver struct {
	core.Resolver
	cfg     Config
	refused error
}

func (a *allowResolver) Resolve(host string, family int) (netip.Addr, error) {
	addr, err := a.Resolver.Resolve(host, family)
	if err == nil && !a.cfg.Allowed(addr) {
		a.refused = fmt.Errorf("target %s resolves to %s, outside allow", host, addr)
		return netip.Addr{}, a.refused
	}
	return addr, err
}

// sweepTime is how long a module's sweep takes at its rate (capped by the
// exporter's): its probes (core.SweepProbes), its timeout, and its trace's.
func sweepTime(cfg core.SweepConfig) time.Duration {
	d := time.Duration(float64(core.SweepProbes(cfg))/cfg.Rate*float64(time.Second)) + cfg.Timeout
	if cfg.Trace != nil {
		d += cfg.Timeout
	}
	return d
}

// answer writes the probe's metrics, or with debug=true the verdict and
// the table first.
func (e *Exporter) answer(w http.ResponseWriter, r *http.Request, req request, res probeResult) {
	result := "failure"
	if res.success() {
		result = "success"
	}
	e.self.probes.WithLabelValues(req.module.Name, result).Inc()
	reg := prometheus.NewRegistry()
	res.register(reg, req.module)
	if !req.debug {
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, r)
		return
	}
	var b bytes.Buffer
	switch {
	case res.sweep != nil:
		_ = report.Render(&b, report.FormatTable, *res.sweep, report.Options{})
	default:
		fmt.Fprintf(&b, "cannot probe: %s\n", res.failed)
	}
	b.WriteString("\nmetrics:\n")
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			fmt.Fprintf(&b, "%s%s %g\n", mf.GetName(), labelText(m.GetLabel()), m.GetGauge().GetValue())
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(b.Bytes())
}
