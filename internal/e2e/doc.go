// Package e2e holds the end-to-end tests: the real ecmpscan binary against
// real ECMP fabrics built by `ecmpscan lab` in network namespaces, compared
// with the kernel's own routing decisions (the lab's oracle). They need root
// and skip with a reason without it.
package e2e
