package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ecmpscan/ecmpscan/hash"
	"github.com/ecmpscan/ecmpscan/internal/lab"
)

// TestSharedHashSeedComesBackTheSameWay: with one multipath hash seed on
// every router (lab up --hash-seed shared), Linux's symmetric hash brings
// every flow back over the members it went out by, in both tiers, as the
// kernel's own route lookups say; with a seed per router (the default),
// some flows come back another way.
func TestSharedHashSeedComesBackTheSameWay(t *testing.T) {
	for _, mode := range lab.HashSeedModes {
		t.Run(mode, func(t *testing.T) {
			f := fabric(t, "hs"+mode[:1], "--width", "4", "--width2", "3", "--seed", "9", "--hash-seed", mode, "--icmp-ratelimit", "0")
			var tuples []hash.FiveTuple
			for _, sp := range portRange(41000, 32) {
				tuples = append(tuples, hash.FiveTuple{Src: f.Client4, Dst: f.Server4, Proto: hash.ProtoTCP, SrcPort: sp, DstPort: 80})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			exps, err := f.ExpectAll(ctx, tuples)
			if err != nil {
				t.Fatal(err)
			}
			same := 0
			for i, e := range exps {
				fwd, back := e.ForwardNodes(), e.ReturnNodes()
				slices.Reverse(back)
				if len(fwd) != 4 {
					t.Fatalf("port %d: forward path %v, want r1, a p, a q and r2", tuples[i].SrcPort, fwd)
				}
				if slices.Equal(fwd, back) {
					same++
				}
			}
			switch {
			case mode == lab.HashSeedShared && same != len(exps):
				t.Errorf("one seed: %d of %d flows come back the way they went, want all", same, len(exps))
			case mode == lab.HashSeedPerRouter && same == len(exps):
				t.Errorf("a seed per router: all %d flows come back the way they went", same)
			}
			t.Logf("%s: %d of %d flows come back the way they went", mode, same, len(exps))
		})
	}
}
