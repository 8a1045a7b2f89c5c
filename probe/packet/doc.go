// Package packet builds the probes ecmpscan sends (TCP SYN, ICMP echo) and
// parses the replies it reads back from raw sockets.
//
// Everything here is a pure function over byte slices; sockets live
// elsewhere. Builders serialize through gopacket so checksums come from a
// well-tested implementation. Parsers are hand-written because they face
// arbitrary bytes from the network: they check every length before
// indexing and report problems as the sentinel errors of this package
// (ErrTruncated, ErrMalformed, ErrUnsupported), never by panicking.
//
// Parsers do not verify checksums: replies from local veth or loopback
// targets carry partial (offloaded) checksums, and a packet that matches
// one of our probes by tuple and sequence is already hard to forge.
package packet
