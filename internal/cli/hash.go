package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/report"
)

type hashFlags struct {
	algo, mapping   string
	buckets         int
	src, dst, proto string
	sports          string
	dport           int
	fit             string
	maxN            int
	format          string
	predict         string
}

func newHashCommand(s *Streams) *cobra.Command {
	var f hashFlags
	cmd := &cobra.Command{
		Use:   "hash",
		Short: "Compute ECMP buckets with known hash models, or fit them to a sweep",
		Long: `hash computes which of N next hops known hash models (CRC32, CRC32C,
CRC16-CCITT, XOR fold, Toeplitz with the RSS key; modulo or hash-threshold
mapping) pick for given five-tuples, or, with --fit, tries every model,
mapping and N against a sweep's ok/fail split (its --format json output).
Linux and most ASICs seed their hash, so usually nothing fits: the fit says
so plainly and predicts nothing.`,
		Example: `  ecmpscan hash --src 198.18.1.1 --dst 198.18.2.2 --sport 30000-30007 --dport 3306 --buckets 4
  ecmpscan sweep 198.18.2.2:3306 --sport 30000-30255 --format json > sweep.json; ecmpscan hash --fit sweep.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.format != "table" && f.format != "json" {
				return usageError("unknown --format %q (want table or json)", f.format)
			}
			if f.fit != "" {
				return runFit(f, s)
			}
			return runBuckets(f, s)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.algo, "algo", "all", "hash model: "+strings.Join(modelNames(), ", ")+", or all")
	fl.StringVar(&f.mapping, "mapping", "hash-threshold", "hash to next hop: modulo or hash-threshold")
	fl.IntVar(&f.buckets, "buckets", 4, "number of next hops N")
	fl.StringVar(&f.src, "src", "", "source address")
	fl.StringVar(&f.dst, "dst", "", "destination address")
	fl.StringVar(&f.proto, "proto", "tcp", "tcp, udp or icmp (icmp: --sport is the echo identifier)")
	fl.StringVar(&f.sports, "sport", "30000-30015", "source ports: ranges and lists")
	fl.IntVar(&f.dport, "dport", 80, "destination port")
	fl.StringVar(&f.fit, "fit", "", "a sweep's JSON result to explain with every model x mapping x N")
	fl.IntVar(&f.maxN, "max-n", 64, "with --fit: largest N to try")
	fl.StringVar(&f.predict, "predict", "", "with --fit: source ports to predict for (default: the swept range and the next 64)")
	fl.StringVar(&f.format, "format", "table", "output: table or json")
	return cmd
}

func modelNames() []string {
	var out []string
	for _, m := range hash.Models() {
		out = append(out, m.Name())
	}
	return out
}

func runBuckets(f hashFlags, s *Streams) error {
	src, err1 := netip.ParseAddr(f.src)
	dst, err2 := netip.ParseAddr(f.dst)
	switch {
	case err1 != nil || err2 != nil:
		return usageError("--src and --dst must be IP addresses")
	case src.Unmap().Is4() != dst.Unmap().Is4():
		return usageError("--src and --dst are of different address families")
	case f.buckets < 1 || f.buckets > 4096:
		return usageError("--buckets must be between 1 and 4096, got %d", f.buckets)
	case f.dport < 0 || f.dport > 65535:
		return usageError("bad --dport %d", f.dport)
	}
	proto, err := protoNumber(f.proto, dst.Unmap().Is6())
	if err != nil {
		return err
	}
	sports, err := parsePorts(f.sports)
	if err != nil {
		return err
	}
	mp, err := hash.MappingByName(f.mapping)
	if err != nil {
		return usageError("%v", err)
	}
	models := hash.Models()
	if f.algo != "all" {
		m, err := hash.ModelByName(f.algo)
		if err != nil {
			return usageError("%v", err)
		}
		models = []hash.Model{m}
	}
	type row struct {
		Sport   uint16         `json:"sport"`
		Buckets map[string]int `json:"buckets"`
	}
	rows := make([]row, 0, len(sports))
	for _, sp := range sports {
		t := hash.FiveTuple{Src: src.Unmap(), Dst: dst.Unmap(), Proto: proto, SrcPort: sp, DstPort: uint16(f.dport)}
		if proto != hash.ProtoTCP && proto != 17 {
			t.DstPort = 0
		}
		r := row{Sport: sp, Buckets: map[string]int{}}
		for _, m := range models {
			r.Buckets[m.Name()] = hash.BucketOf(m, mp, t, f.buckets)
		}
		rows = append(rows, r)
	}
	if f.format == "json" {
		return writeJSON(s.Out, map[string]any{"schema_version": 1, "mapping": mp.Name(), "buckets": f.buckets, "ports": rows})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s N=%d, %s %s -> %s:%d\n\n%6s", "buckets", mp.Name(), f.buckets, f.proto, src, dst, f.dport, "SPORT")
	for _, m := range models {
		fmt.Fprintf(&b, "  %11s", m.Name())
	}
	b.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%6d", r.Sport)
		for _, m := range models {
			fmt.Fprintf(&b, "  %11d", r.Buckets[m.Name()])
		}
		b.WriteString("\n")
	}
	_, err = io.WriteString(s.Out, b.String())
	return err
}

func protoNumber(name string, v6 bool) (uint8, error) {
	switch name {
	case "tcp":
		return hash.ProtoTCP, nil
	case "udp":
		return 17, nil
	case "icmp":
		if v6 {
			return hash.ProtoICMPv6, nil
		}
		return hash.ProtoICMP, nil
	}
	return 0, usageError("unknown --proto %q (want tcp, udp or icmp)", name)
}

// agreedPrediction lists the ports every plausible fit says will fail. Often
// several N (or models) explain the same sweep; where they disagree about
// an unswept port, nothing is predicted for it.
func agreedPrediction(fits []hash.Fit, in hash.FitInput, ports []uint16) []uint16 {
	var agreed map[uint16]bool
	for _, f := range fits {
		if !f.Plausible {
			continue
		}
		these := map[uint16]bool{}
		for _, p := range hash.Predict(f, in, ports) {
			if agreed == nil || agreed[p] {
				these[p] = true
			}
		}
		agreed = these
	}
	var out []uint16
	for _, p := range ports {
		if agreed[p] {
			out = append(out, p)
		}
	}
	return out
}

func runFit(f hashFlags, s *Streams) error {
	if f.maxN < 2 || f.maxN > hash.MaxFitN {
		return usageError("--max-n must be between 2 and %d, got %d", hash.MaxFitN, f.maxN)
	}
	in, err := readFitInput(f.fit)
	if err != nil {
		return err
	}
	predictFor := defaultPredictPorts(in.Ports)
	if f.predict != "" {
		if predictFor, err = parsePorts(f.predict); err != nil {
			return err
		}
	}
	fits := hash.FitModels(in, f.maxN)
	summary := hash.FitSummary(fits)
	predicted := agreedPrediction(fits, in, predictFor)
	if f.format == "json" {
		type fitJSON struct {
			Model      string  `json:"model"`
			Mapping    string  `json:"mapping"`
			N          int     `json:"n"`
			BadBuckets []int   `json:"bad_buckets"`
			PValue     float64 `json:"p_value"`
			Plausible  bool    `json:"plausible"`
		}
		out := []fitJSON{}
		for _, x := range fits {
			out = append(out, fitJSON{x.Model, x.Mapping, x.N, x.BadBuckets, x.PValue, x.Plausible})
		}
		if predicted == nil {
			predicted = []uint16{}
		}
		return writeJSON(s.Out, map[string]any{"schema_version": 1, "summary": summary, "fits": out, "predicted_failing": predicted})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "fit: %d ports (%d failing) toward %s:%d from %s\n", len(in.Ports), len(in.Failing), in.Dst, in.DstPort, in.Src)
	for i, x := range fits {
		if i == 8 {
			fmt.Fprintf(&b, "  ... %d more exact fits\n", len(fits)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", x)
	}
	fmt.Fprintf(&b, "verdict: %s\n", summary)
	if len(predicted) > 0 {
		fmt.Fprintf(&b, "predicted to fail: %s\n", report.PortRanges(predicted))
	}
	_, err = io.WriteString(s.Out, b.String())
	return err
}

func readFitInput(path string) (hash.FitInput, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return hash.FitInput{}, usageError("--fit: %v", err)
	}
	doc, err := report.DecodeSweep(data)
	if err != nil {
		return hash.FitInput{}, usageError("--fit %s: %v", path, err)
	}
	return fitInput(doc), nil
}

// fitInput is the ok/fail split of a sweep. Flaky and error ports are
// neither: a fit must not guess them.
func fitInput(doc report.SweepDocument) hash.FitInput {
	in := hash.FitInput{Src: doc.Source, Dst: doc.Target.Addr(), Proto: hash.ProtoTCP, DstPort: doc.Target.Port(), Failing: map[uint16]bool{}}
	for _, p := range doc.Ports {
		switch p.State {
		case hash.StateOK:
			in.Ports = append(in.Ports, p.Sport)
		case hash.StateFail:
			in.Ports = append(in.Ports, p.Sport)
			in.Failing[p.Sport] = true
		}
	}
	return in
}

// defaultPredictPorts is the swept range and the 64 ports after it.
func defaultPredictPorts(swept []uint16) []uint16 {
	if len(swept) == 0 {
		return nil
	}
	lo, hi := swept[0], swept[0]
	for _, p := range swept {
		lo, hi = min(lo, p), max(hi, p)
	}
	var out []uint16
	for p := int(lo); p <= min(int(hi)+64, 65535); p++ {
		out = append(out, uint16(p))
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
