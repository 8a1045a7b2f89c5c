package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/net/netutil"

	"github.com/ecmpscan/ecmpscan/internal/exporter"
)

// exporterFlags are the raw flag values of `ecmpscan exporter`.
type exporterFlags struct {
	config   string
	listen   string
	check    bool
	scrapers []string
}

// DefaultExporterListen is where the exporter listens by default.
const DefaultExporterListen = ":9643"

// maxExporterConns bounds the HTTP connections the exporter holds at once.
const maxExporterConns = 512

func newExporterCommand(s *Streams) *cobra.Command {
	var f exporterFlags
	cmd := &cobra.Command{
		Use:   "exporter --config FILE [--listen ADDR:PORT]",
		Short: "Serve Prometheus: /probe?target=HOST:PORT&module=NAME runs one sweep",
		Long: `Run ecmpscan as a Prometheus exporter, in blackbox_exporter's multi-target
pattern: Prometheus scrapes /probe?target=HOST:PORT&module=NAME, the exporter
runs one sweep of the module's source ports within the scrape's timeout and
answers with probe_success, ecmpscan_ports{state}, ecmpscan_fail_ratio and
the rest (see the README). /metrics has the exporter's own metrics,
/-/healthy says it is up, and &debug=true adds the verdict and the table.

Targets outside the config's allow list get 403 and nothing is sent; bad
requests get 400 with the reason; more sweeps than limits.concurrent wait,
then get 503 within the deadline; limits.rate paces every probe of every
sweep together. It needs CAP_NET_RAW for raw mode and falls back to connect
mode without it (mode: auto).`,
		Example: `  ecmpscan exporter --config /etc/ecmpscan/exporter.yml --check-config
  ecmpscan exporter --config /etc/ecmpscan/exporter.yml --listen :9643 --scraper 10.0.0.0/8`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.config == "" {
				return usageError("--config FILE is required")
			}
			cfg, err := exporter.LoadConfig(f.config)
			if err != nil {
				return &exitError{code: ExitUsage, err: err}
			}
			scrapers, err := parsePrefixes("--scraper", f.scrapers)
			if err != nil {
				return err
			}
			if f.check {
				fmt.Fprintf(s.Out, "%s: ok (%d modules: %v; allow %v; limits: %d concurrent, %g probes/s)\n",
					f.config, len(cfg.Modules), cfg.ModuleNames(), cfg.Allow, cfg.Limits.Concurrent, cfg.Limits.Rate)
				return nil
			}
			return runExporter(cmd.Context(), f, cfg, scrapers, s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the exporter's YAML config (modules, allow, limits)")
	fl.StringVar(&f.listen, "listen", DefaultExporterListen, "ADDR:PORT to serve HTTP on")
	fl.BoolVar(&f.check, "check-config", false, "validate the config and exit")
	fl.StringSliceVar(&f.scrapers, "scraper", nil, "CIDR of clients that may scrape (repeatable; default: any)")
	return cmd
}

func parsePrefixes(flag string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, a := range list {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return nil, usageError("%s %q is not a CIDR", flag, a)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func runExporter(ctx context.Context, f exporterFlags, cfg exporter.Config, scrapers []netip.Prefix, s *Streams) error {
	ex := exporter.New(cfg)
	ex.Log = func(line string) {
		fmt.Fprintf(s.Err, "%s ecmpscan exporter: %s\n", time.Now().UTC().Format(time.RFC3339), line)
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return &exitError{code: ExitCannotProbe, err: fmt.Errorf("listen: %w", err)}
	}
	ln = netutil.LimitListener(ln, maxExporterConns)
	srv := &http.Server{Handler: onlyFrom(scrapers, ex.Handler(), ex.Log), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: exporter.MaxDeadline + 10*time.Second, MaxHeaderBytes: 16 << 10}
	fmt.Fprintf(s.Err, "ecmpscan exporter listening on %s: modules %v, allow %v\n", ln.Addr(), cfg.ModuleNames(), cfg.Allow)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return &exitError{code: ExitCannotProbe, err: err}
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// onlyFrom refuses clients outside the scraper prefixes (none: any).
func onlyFrom(allow []netip.Prefix, h http.Handler, log func(string)) http.Handler {
	if len(allow) == 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !slices.ContainsFunc(allow, func(p netip.Prefix) bool { return p.Contains(ap.Addr().Unmap()) }) {
			log(fmt.Sprintf("refused %s: not a --scraper", r.RemoteAddr))
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}
