package exporter

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

// probeResult is what one /probe answers: the sweep, or why there is none.
type probeResult struct {
	sweep    *report.Sweep
	duration time.Duration
	// failed says why no sweep could run (cannot probe): the probe fails
	// with the verdict cannot-probe.
	failed string
}

// success is probe_success: the sweep ran to its end, found no ECMP fault
// and the target answers. A sweep it could not finish or measure is never
// a success.
func (r probeResult) success() bool {
	if r.sweep == nil || r.sweep.Interrupted {
		return false
	}
	k := r.sweep.Summary.Kind
	return k == report.KindHealthy || k == report.KindLoss
}

// verdict is the ecmpscan_verdict kind.
func (r probeResult) verdict() string {
	switch {
	case r.sweep == nil:
		return string(report.KindCannotProbe)
	case r.sweep.Interrupted:
		return "interrupted"
	}
	return string(r.sweep.Summary.Kind)
}

// register puts a probe's series in a registry of its own (one per
// request, as blackbox_exporter does).
func (r probeResult) register(reg *prometheus.Registry, mod Module) {
	gauge := func(name, help string, v float64) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		g.Set(v)
		reg.MustRegister(g)
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	gauge("probe_success", "1 when the sweep ran to its end, found no ECMP fault and the target answers.", b2f(r.success()))
	gauge("probe_duration_seconds", "How long the probe took.", r.duration.Seconds())
	vec("ecmpscan_verdict", "The sweep's verdict, one series set to 1.", "kind").WithLabelValues(r.verdict()).Set(1)
	if r.sweep == nil {
		return
	}
	s := r.sweep.Summary
	ports := vec("ecmpscan_ports", "Source ports by state: ok, fail (every probe lost), flaky (some), error (none left this host).", "state")
	for state, n := range map[string]int{"ok": s.OK, "fail": s.Fail, "flaky": s.Flaky, "error": s.Error} {
		ports.WithLabelValues(state).Set(float64(n))
	}
	gauge("ecmpscan_fail_ratio", "Failing ports over measured ports.", s.FailFraction)
	gauge("ecmpscan_background_loss_ratio", "Per-probe loss on the ports that answered at least once.", s.BackgroundLoss)
	gauge("ecmpscan_sweep_complete", "1 when the sweep ran to its end (0: cut by the scrape's deadline).", b2f(!r.sweep.Interrupted))
	// ICMP that was not measured has no series: absent is not healthy.
	switch s.ICMPState {
	case string(hash.StateOK), string(hash.StateFail), string(hash.StateFlaky):
		gauge("ecmpscan_icmp_success", "1 when every ICMP echo identifier was answered.", b2f(s.ICMPState == string(hash.StateOK)))
	}
	if w := s.Width; w.Valid() {
		width := vec("ecmpscan_width_estimate", "The ECMP group's width from the fail ratio, assuming one bad member (95% bounds; high 0: unbounded).", "bound")
		width.WithLabelValues("low").Set(float64(w.Low))
		width.WithLabelValues("best").Set(float64(w.Best))
		width.WithLabelValues("high").Set(float64(w.High))
	}
	if mod.Trace && r.sweep.Trace != nil {
		// The verdict's direction: suspects[0] of an unknown one is one of
		// the rivals, not a finding.
		vec("ecmpscan_trace_direction", "The trace diagnosis's direction (forward, return, none or unknown), one series set to 1.", "direction").
			WithLabelValues(string(r.sweep.Trace.Diagnosis.Direction)).Set(1)
	}
	if mod.Trace && r.sweep.Trace != nil && len(r.sweep.Trace.Diagnosis.Suspects) > 0 {
		sp := r.sweep.Trace.Diagnosis.Suspects[0]
		vec("ecmpscan_suspect_info", "Where the trace puts the fault (suspects[0]; first_hop: the gateway a silent first hop is), set to 1.", "direction", "kind", "addr", "next", "first_hop").
			WithLabelValues(string(sp.Direction), sp.Kind, addrLabel(sp.Addr.IsValid(), sp.Addr.String()), addrLabel(sp.Next.IsValid(), sp.Next.String()),
				addrLabel(sp.FirstHop.IsValid(), sp.FirstHop.String())).Set(1)
	}
	if mod.ExportPorts {
		up := vec("ecmpscan_port_up", "1 when the source port's flow answered every probe, 0 when it lost some or all (error ports have no series).", "sport")
		for _, p := range r.sweep.Ports {
			if p.State != hash.StateError {
				up.WithLabelValues(strconv.Itoa(int(p.Tuple.SrcPort))).Set(b2f(p.State == hash.StateOK))
			}
		}
	}
}

func addrLabel(valid bool, s string) string {
	if !valid {
		return ""
	}
	return s
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// selfMetrics are the exporter's own, on /metrics.
type selfMetrics struct {
	probes   *prometheus.CounterVec
	rejected *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newSelfMetrics(reg prometheus.Registerer, modules []string) *selfMetrics {
	m := &selfMetrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecmpscan_exporter_probes_total",
			Help: "Probes run, by module and result (success, failure)."}, []string{"module", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ecmpscan_exporter_rejected_total",
			Help: "Probe requests refused before anything was sent, by reason."}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ecmpscan_exporter_sweeps_in_flight",
			Help: "Sweeps running now."}),
	}
	reg.MustRegister(m.probes, m.rejected, m.inFlight)
	for _, mod := range modules {
		for _, res := range []string{"success", "failure"} {
			m.probes.WithLabelValues(mod, res)
		}
	}
	for _, why := range rejectReasons {
		m.rejected.WithLabelValues(why)
	}
	return m
}

// The reasons a request is refused (the rejected counter's label).
const (
	rejectBadRequest = "bad-request"
	rejectForbidden  = "forbidden"
	rejectBusy       = "busy"
	rejectTooSlow    = "too-slow"
	rejectPanic      = "panic"
)

var rejectReasons = []string{rejectBadRequest, rejectForbidden, rejectBusy, rejectTooSlow, rejectPanic}

// labelText writes labels as {k="v",...}.
func labelText(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, l := range ls {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
	}
	b.WriteByte('}')
	return b.String()
}
