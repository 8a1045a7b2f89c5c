//go:build !linux

package responder

import "github.com/ecmpscan/ecmpscan/internal/rawsock"

// OpenCapture needs raw sockets, which only Linux has here.
func OpenCapture(v6 bool) (Capture, error) { return nil, rawsock.ErrUnsupported }
