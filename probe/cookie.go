package probe

// A cookieKey maps a probe's position in its run to the number it carries
// on the wire (the TCP sequence number, or the echo sequence number), and
// back. It is a keyed permutation, a 4-round Feistel network: per run
// unguessable, unique within the run, and invertible, so a reply finds its
// probe without a table of every probe sent and a forged or stale
// acknowledgement decodes to a probe that does not exist.
type cookieKey uint64

const feistelRounds = 4

// roundFn is the Feistel round function: a splitmix64 finaliser over the
// key, the round and one half, cut to the half's width.
func (k cookieKey) roundFn(round int, half uint32, bits uint) uint32 {
	z := uint64(k) + uint64(round+1)*0x9e3779b97f4a7c15 + uint64(half)*0xbf58476d1ce4e5b9
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return uint32(z & (1<<bits - 1))
}

// seal permutes the low bits (16 or 32) of v.
func (k cookieKey) seal(v uint32, bits uint) uint32 {
	h := bits / 2
	mask := uint32(1<<h - 1)
	l, r := v>>h&mask, v&mask
	for i := 0; i < feistelRounds; i++ {
		l, r = r, l^k.roundFn(i, r, h)
	}
	return l<<h | r
}

// open inverts seal.
func (k cookieKey) open(c uint32, bits uint) uint32 {
	h := bits / 2
	mask := uint32(1<<h - 1)
	l, r := c>>h&mask, c&mask
	for i := feistelRounds - 1; i >= 0; i-- {
		l, r = r^k.roundFn(i, l, h), l
	}
	return l<<h | r
}

// cookieOf is what probe p, number i of its run, carries. A TCP probe's
// 32-bit sequence number holds its index. An echo request has only a 16-bit
// sequence number; it holds the repeat, which together with the echo
// identifier names the probe (Source.EchoIndex).
func (k cookieKey) cookieOf(p Probe, i int) uint32 {
	if p.Kind == KindICMPEcho {
		return k.seal(uint32(p.Repeat), 16)
	}
	return k.seal(uint32(i), 32)
}

// ProbeOf decodes the sequence number of a SYN that left with a run's
// secret back into the probe it is, among the run's probes (src); false
// when it is none of them: another run's, or not one of ours at all.
func ProbeOf(secret uint64, src Source, seq uint32) (Probe, bool) {
	i := int(cookieKey(secret).open(seq, 32))
	if i >= src.Len() {
		return Probe{}, false
	}
	p := src.At(i)
	return p, p.Kind == KindTCPSYN || p.Kind == KindTCPSYNACK
}
