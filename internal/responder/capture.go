package responder

import "golang.org/x/net/bpf"

// synFilter keeps TCP segments with SYN set and ACK clear: the probes, not
// the host's own traffic. On IPv4 a raw socket sees the IP header first.
func synFilter(v6 bool) []bpf.Instruction {
	const synFlag, ackFlag = 0x02, 0x10
	load := []bpf.Instruction{bpf.LoadAbsolute{Off: 13, Size: 1}}
	if !v6 {
		load = []bpf.Instruction{
			bpf.LoadMemShift{Off: 0},           // X = IPv4 header length
			bpf.LoadIndirect{Off: 13, Size: 1}, // TCP flags
		}
	}
	return append(load,
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: synFlag | ackFlag},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: synFlag, SkipFalse: 1},
		bpf.RetConstant{Val: 1 << 16},
		bpf.RetConstant{Val: 0},
	)
}
