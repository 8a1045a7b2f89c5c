package responder

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// FuzzDecodeRequest: any frame payload is refused cleanly or decodes to a
// request whose shape holds; a register body decodes within bounds; the
// guard refuses whatever was not signed with the token.
func FuzzDecodeRequest(f *testing.F) {
	reg := register(PortRange{30000, 30010})
	var nonce [16]byte
	good, _ := NewRequest(testToken, OpRegister, nonce, t0, reg)
	var buf bytes.Buffer
	_ = WriteFrame(&buf, good, MaxFrame)
	f.Add(buf.Bytes()[4:])
	f.Add([]byte(`{"v":1,"op":"report","nonce":"00","ts":0,"body":{},"mac":""}`))
	f.Add([]byte(`{"client":"198.18.1.1","target":"198.18.2.2:80","sports":[[1,65535]],"duration_ms":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, _, _, _, err := DecodeRegister(b); err == nil {
			// Bounded whatever it asked for.
			_, ports, _, _, _ := DecodeRegister(b)
			if len(ports) == 0 || len(ports) > MaxPorts {
				t.Fatalf("%d ports", len(ports))
			}
		}
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		if r.Op != OpRegister && r.Op != OpReport && r.Op != OpReverse || len(r.Nonce) != 32 || len(r.MAC) != 64 {
			t.Fatalf("bad request passed: %+v", r)
		}
		if bytes.Equal(b, buf.Bytes()[4:]) {
			return // the seed, which is signed
		}
		if err := NewGuard([]byte("another token, not the seed's...")).Check(r, t0); err == nil {
			t.Fatal("an unsigned request passed the guard")
		}
	})
}

// FuzzDecodeReverse: any reverse body is refused or asks for a bounded
// trace; any report's return traces are refused or read back into hops
// in TTL order that end at the client, if they reach it.
func FuzzDecodeReverse(f *testing.F) {
	good, _ := json.Marshal(reverseRequest(NewRunID(), 30000, 30001))
	f.Add(good)
	rep, _ := json.Marshal(Report{Run: NewRunID(), Arrivals: []Arrival{{Sport: 1, Count: 1}}, Return: &ReturnTraces{State: ReverseDone,
		Flows: []ReturnFlow{{Sport: 1, Hops: []ReturnHop{{TTL: 1, Addr: "198.19.1.1", Probes: 2, Answers: 1}, {TTL: 2, Addr: "198.18.1.1", Reached: true}}}}}})
	f.Add(rep)
	f.Add([]byte(`{"return":{"flows":[{"sport":1,"hops":[{"ttl":1,"others":["::1"]}]}]}}`))
	f.Add([]byte(`{"return":{"state":"done","flows":[],"gateway":"198.19.9.1"}}`))
	f.Add([]byte(`{"return":{"state":"done","flows":[],"retried":{"ttls":[1,2],"holes":40,"rounds":10,"probes":30,"answers":12}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := DecodeReverse(b); err == nil {
			if n := len(r.Sports) * r.MaxTTL * r.PerHop; n == 0 || n > MaxReverseFlows*MaxReverseTTL*MaxReversePerHop {
				t.Fatalf("%d probes asked for", n)
			}
			if r.PatienceMS < 0 || r.PatienceMS > MaxReversePatienceMS {
				t.Fatalf("patience of %d ms asked for", r.PatienceMS)
			}
		}
		var rep Report
		if json.Unmarshal(b, &rep) != nil || rep.Return == nil {
			return
		}
		if gw, err := rep.Return.FirstHop(); err == nil && gw.IsValid() && netip.MustParseAddr(gw.String()) != gw {
			t.Fatalf("gateway %q read as %v", rep.Return.Gateway, gw)
		}
		if rr := rep.Return.Retried; rr != nil {
			if r, err := rr.Retried(); err == nil && (r.Answers > r.Probes || len(r.TTLs) > MaxReverseTTL) {
				t.Fatalf("retried read as %+v", r)
			}
		}
		for _, fl := range rep.Return.Flows {
			hops, err := fl.TraceHops()
			if err != nil {
				continue
			}
			for i, h := range hops {
				if h.TTL != i+1 || h.Answers > h.Probes || (h.Reached && i != len(hops)-1) || (h.Reached && !h.Addr.IsValid()) {
					t.Fatalf("hop %d read as %+v", i, h)
				}
			}
		}
	})
}

// FuzzParseSYN: any packet is refused or parsed within its bounds, and
// only a SYN without ACK passes.
func FuzzParseSYN(f *testing.F) {
	f.Add(synPacket(clientAddr, 30000, 3306, 61, 0x02), false)
	f.Add(synPacket(clientAddr, 30000, 3306, 61, 0x12)[20:], true)
	f.Add([]byte{0x4f, 0, 0, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		s, err := parseSYN(b, v6, netip.MustParseAddr("2001:db8:1::1"), 64)
		if err != nil {
			return
		}
		tcp := b
		if !v6 {
			tcp = b[int(b[0]&0x0f)*4:]
		}
		if tcp[13]&0x12 != 0x02 || !s.src.IsValid() {
			t.Fatalf("passed %x as a SYN: %+v", b, s)
		}
	})
}

// TestSYNFilter runs the socket filter in x/net/bpf's VM: it must keep
// exactly what parseSYN keeps, on both families.
func TestSYNFilter(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		vm, err := bpf.NewVM(synFilter(v6))
		if err != nil {
			t.Fatal(err)
		}
		for _, flags := range []byte{0x02, 0x12, 0x10, 0x04, 0x03, 0x06, 0xc2} {
			p := synPacket(clientAddr, 30000, 3306, 61, flags)
			if v6 {
				p = p[20:]
			}
			n, err := vm.Run(p)
			if err != nil {
				t.Fatal(err)
			}
			_, perr := parseSYN(p, v6, netip.MustParseAddr("2001:db8:1::1"), 64)
			if (n > 0) != (perr == nil) {
				t.Errorf("v6=%v flags %#x: filter keeps %d bytes, parser says %v", v6, flags, n, perr)
			}
		}
		// An IPv4 header with options moves the TCP flags.
		if !v6 {
			p := synPacket(clientAddr, 30000, 3306, 61, 0x02)
			long := append([]byte{0x46}, p[1:20]...)
			long = append(append(long, 1, 1, 1, 1), p[20:]...)
			if n, _ := vm.Run(long); n == 0 {
				t.Error("filter drops a SYN behind IPv4 options")
			}
		}
	}
}
