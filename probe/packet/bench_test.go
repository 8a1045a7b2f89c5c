package packet

import "testing"

func BenchmarkParseIPv4SYNACK(b *testing.B) {
	pkt := readHex(b, "valid-ipv4-synack.hex")
	b.ReportAllocs()
	b.SetBytes(int64(len(pkt)))
	for b.Loop() {
		if _, err := ParseIPv4(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendTCPSYN(b *testing.B) {
	for _, tc := range []struct {
		name string
		syn  SYN
	}{{"v4", syn4}, {"v6", syn6}} {
		b.Run(tc.name, func(b *testing.B) {
			buf := make([]byte, 0, 64)
			s := tc.syn
			b.ReportAllocs()
			for b.Loop() {
				var err error
				s.Seq++
				if buf, err = AppendTCPSYN(buf[:0], s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
