package report

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTmpPower(t *testing.T) {
	files, _ := filepath.Glob("/tmp/rec2026/*ipid*.json.gz")
	full, partial, none, multi := 0, 0, 0, 0
	for _, file := range files {
		r, err := readRecorded(file)
		if err != nil {
			t.Fatal(err)
		}
		tr, _ := DecodeTrace(r.Trace)
		d := DiagnoseSample(tr.Flows, r.sample())
		addrs := map[string]map[string]int{}
		for _, f := range tr.Flows {
			for _, h := range f.Hops {
				for _, s := range h.IDs {
					n := r.Nodes[s.Addr.String()]
					if addrs[n] == nil {
						addrs[n] = map[string]int{}
					}
					addrs[n][s.Addr.String()]++
				}
			}
		}
		grouped := map[string]int{}
		for _, g := range d.SharedIPID {
			grouped[r.Nodes[g[0].String()]] += len(g)
		}
		var notes []string
		for n, as := range addrs {
			if len(as) < 2 {
				continue
			}
			multi++
			switch g := grouped[n]; {
			case g == len(as):
				full++
			case g == 0:
				none++
				notes = append(notes, fmt.Sprintf("%s none %v", n, as))
			default:
				partial++
				notes = append(notes, fmt.Sprintf("%s %d/%d %v", n, g, len(as), as))
			}
		}
		if len(notes) > 0 {
			fmt.Fprintln(os.Stdout, filepath.Base(file), strings.Join(notes, "; "))
		}
	}
	fmt.Println("multi-address routers", multi, "full", full, "partial", partial, "none", none)
}
