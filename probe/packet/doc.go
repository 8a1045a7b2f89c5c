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
// Parsers do not verify IP, TCP or ICMP checksums: replies from local veth
// or loopback targets carry partial (offloaded) checksums, and a packet that
// matches one of our probes by tuple and sequence is already hard to forge.
// The one exception is the checksum of an RFC 4884 ICMP extension
// structure, which routers compute in software: it is what tells an
// extension from a long quote when the length attribute is missing, and a
// non-zero one that fails marks the extension malformed.
//
// ICMP errors from MPLS routers may carry the probe's label stack (RFC 4950)
// in an RFC 4884 extension; the parsers decode it into Reply.MPLS.
package packet
