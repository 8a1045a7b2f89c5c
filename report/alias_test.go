package report

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// counterFabric simulates the answers at one TTL of routers whose
// addresses draw IP IDs from counters: counters[i] is the counter of
// address i (addresses with one counter are one router's). Each of n
// answers comes from a random address, paced by gap; every answer the
// router sends advances its counter by 1, and by step() more for traffic
// of its own.
type counterFabric struct {
	rng      *rand.Rand
	counters []int
	step     func() uint16
	ttl      uint8
	start    func() uint16 // a counter's first value; nil: uniform
}

func (c counterFabric) flows(n int, gap time.Duration) []FlowTrace {
	value := map[int]uint16{}
	for _, k := range c.counters {
		if _, ok := value[k]; !ok {
			value[k] = uint16(c.rng.IntN(1 << 16))
			if c.start != nil {
				value[k] = c.start()
			}
		}
	}
	at := time.Unix(1000, 0)
	var out []FlowTrace
	for i := range n {
		a := c.rng.IntN(len(c.counters))
		k := c.counters[a]
		value[k] += 1 + c.step()
		if value[k] == 0 {
			value[k] = 1 // 0 is no identification
		}
		at = at.Add(gap/2 + time.Duration(c.rng.Int64N(int64(gap))))
		out = append(out, FlowTrace{Sport: uint16(10000 + i), Hops: []TraceHop{{TTL: 3,
			IDs: []IDSample{{Addr: addrN(a), At: at, ID: value[k], TTL: c.ttl}}}}})
	}
	return out
}

func addrN(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 3, byte(i + 1)}) }

func TestSharedCountersGroupsOneRoutersAddresses(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	c := counterFabric{rng: rng, counters: []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 3}, ttl: 62,
		step: func() uint16 { return uint16(rng.IntN(3)) }}
	got := sharedCounters(c.flows(160, time.Millisecond))
	want := [][]netip.Addr{{addrN(0), addrN(1), addrN(2), addrN(3)}, {addrN(4), addrN(5), addrN(6), addrN(7)}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

// TestSharedCountersNoFalseAliases: addresses with counters of their own
// (Linux's per-source buckets, or separate routers), sampled as a trace
// samples them, are never grouped. Linux adds a random step of up to the
// jiffies elapsed since the bucket was last used; slower and faster
// counters are drawn too.
func TestSharedCountersNoFalseAliases(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	near := func() uint16 { return uint16(rng.IntN(1000)) }
	steps := []struct {
		name  string
		step  func() uint16
		start func() uint16
	}{
		{"one per packet", func() uint16 { return 0 }, nil},
		{"linux jiffies", func() uint16 { return uint16(rng.IntN(4)) }, nil},
		{"busy router", func() uint16 { return uint16(rng.IntN(40)) }, nil},
		{"busy routers started together", func() uint16 { return uint16(rng.IntN(40)) }, near},
	}
	for _, tc := range steps {
		name, step := tc.name, tc.step
		false := 0
		for trial := range 300 {
			n := 2 + trial%15
			counters := make([]int, n)
			for i := range counters {
				counters[i] = i
			}
			c := counterFabric{rng: rng, counters: counters, step: step, ttl: 62, start: tc.start}
			if g := sharedCounters(c.flows(8*n, time.Millisecond)); len(g) > 0 {
				false++
				t.Logf("%s, trial %d: %v", name, trial, g)
			}
		}
		if false > 0 {
			t.Errorf("%s: %d of 300 fabrics grouped addresses with counters of their own", name, false)
		}
	}
}

// linuxBursts simulates n addresses with counters of their own, as Linux
// keeps them (per source and destination: stepped by 1 and a random part
// of the jiffies, at 250 Hz, since the last use), answering in bursts as
// a trace's TTL rounds draw them: about 8 answers each.
func linuxBursts(rng *rand.Rand, n int) []FlowTrace {
	val, last := make([]uint16, n), make([]time.Duration, n)
	for i := range val {
		val[i] = uint16(rng.IntN(1 << 16))
	}
	var out []FlowTrace
	at := time.Duration(0)
	for range 4 {
		at += 150 * time.Millisecond
		for range 2 * n {
			at += time.Duration(rng.IntN(1200)) * time.Microsecond * 16 / time.Duration(n)
			i := rng.IntN(n)
			val[i] += 1 + uint16(rng.IntN(int((at-last[i])/(4*time.Millisecond))+1))
			last[i] = at
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			out = append(out, FlowTrace{Sport: uint16(len(out) + 1), Hops: []TraceHop{{TTL: 3,
				IDs: []IDSample{{Addr: a, At: time.Unix(0, 0).Add(at), ID: val[i], TTL: 62}}}}})
		}
	}
	return out
}

// TestSharedCountersNoFalseAliasesAtScale: a 16x16 fabric's link
// addresses at one TTL, 256 of them with Linux's counters (32,640 pairs
// each time); a few pairs interleave by chance, with wide windows.
func TestSharedCountersNoFalseAliasesAtScale(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for trial := range 10 {
		if g := sharedCounters(linuxBursts(rng, 256)); len(g) > 0 {
			t.Errorf("trial %d: addresses with counters of their own grouped: %v", trial, g)
		}
	}
}

func TestSharedCountersNeedsEvidence(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	one := counterFabric{rng: rng, counters: []int{0, 0}, ttl: 62, step: func() uint16 { return 0 }}
	// One pass from one address to the other, never back: no test of
	// the offset from the second side.
	at := time.Unix(0, 0)
	var flows []FlowTrace
	for i, id := range []uint16{10, 12, 14, 15, 16, 17} {
		a := addrN(0)
		if i >= 3 {
			a = addrN(1)
		}
		flows = append(flows, FlowTrace{Sport: uint16(i + 1), Hops: []TraceHop{{TTL: 3,
			IDs: []IDSample{{Addr: a, At: at.Add(time.Duration(i) * time.Millisecond), ID: id, TTL: 62}}}}})
	}
	if g := sharedCounters(flows); len(g) > 0 {
		t.Errorf("one pass grouped: %v", g)
	}
	// Two addresses that start from different TTLs are two routers, even
	// if their identifications happen to interleave.
	flows = one.flows(40, time.Millisecond)
	for i := range flows {
		if flows[i].Hops[0].IDs[0].Addr == addrN(1) {
			flows[i].Hops[0].IDs[0].TTL = 250
		}
	}
	if g := sharedCounters(flows); len(g) > 0 {
		t.Errorf("answers from TTL 64 and 255 grouped: %v", g)
	}
	// A constant identification is no counter.
	flows = one.flows(40, time.Millisecond)
	for i := range flows {
		flows[i].Hops[0].IDs[0].ID = 7
	}
	if g := sharedCounters(flows); len(g) > 0 {
		t.Errorf("a constant identification grouped: %v", g)
	}
}

// TestInArrivalOrderReorders: answers arriving within aliasReorder may have
// been sent in either order.
func TestInArrivalOrderReorders(t *testing.T) {
	at := time.Unix(0, 0)
	s := idSeries{{ID: 5, At: at}, {ID: 7, At: at.Add(100 * time.Microsecond)}, {ID: 6, At: at.Add(200 * time.Microsecond)},
		{ID: 9, At: at.Add(10 * time.Millisecond)}, {ID: 8, At: at.Add(20 * time.Millisecond)}}
	var got []uint16
	for _, x := range inArrivalOrder(s) {
		got = append(got, x.ID)
	}
	if want := []uint16{5, 6, 7, 9, 8}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestSharedCountersGroupsAreOneRoutersOnly: fabrics of routers that
// share a counter each, some of their addresses answering only twice
// (tested against the groups, attachFew), half of the fabrics with routers
// whose counters run fast: every group found is one router's addresses.
func TestSharedCountersGroupsAreOneRoutersOnly(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	wrong, grouped := 0, 0
	for trial := range 300 {
		var counters []int
		for r := range 2 + trial%15 {
			for range 2 + rng.IntN(4) {
				counters = append(counters, r)
			}
		}
		busy := 2 + 38*(trial%2) // every other fabric's routers send much else
		c := counterFabric{rng: rng, counters: counters, ttl: 62, step: func() uint16 { return uint16(rng.IntN(busy)) }}
		for _, g := range sharedCounters(c.flows(4*len(counters), time.Millisecond)) {
			grouped += len(g)
			for _, a := range g[1:] {
				if counters[int(a.As4()[3])-1] != counters[int(g[0].As4()[3])-1] {
					wrong++
					t.Errorf("trial %d: %v spans routers", trial, g)
					break
				}
			}
		}
	}
	if grouped == 0 {
		t.Error("nothing grouped")
	}
	t.Logf("%d addresses grouped, %d groups wrong", grouped, wrong)
}

// TestSharedCountersDeterministic: the groups do not depend on the order of
// the flows, nor on a map's.
func TestSharedCountersDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var counters []int
	for r := range 6 {
		for range 2 + r%3 {
			counters = append(counters, r)
		}
	}
	c := counterFabric{rng: rng, counters: counters, ttl: 62, step: func() uint16 { return uint16(rng.IntN(2)) }}
	flows := c.flows(5*len(counters), time.Millisecond)
	want := fmt.Sprint(sharedCounters(flows))
	for k := range 20 {
		shuffled := slices.Clone(flows)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if got := fmt.Sprint(sharedCounters(shuffled)); got != want {
			t.Fatalf("shuffle %d: %s, want %s", k, got, want)
		}
	}
	if want == "[]" {
		t.Error("nothing grouped")
	}
}
