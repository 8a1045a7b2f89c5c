//go:build !linux

package lab

import (
	"context"
	"errors"
	"net/netip"
	"syscall"
	"time"
)

// errLinuxOnly: the lab is built from Linux network namespaces.
var errLinuxOnly = errors.New("the lab needs Linux network namespaces")

// InNamespace needs Linux.
func InNamespace(string, func() error) error { return errLinuxOnly }

func reuseAddr(_, _ string, _ syscall.RawConn) error { return errLinuxOnly }

type connReq struct{ src, dst netip.AddrPort }

func connectBatch(context.Context, string, []connReq, time.Duration) ([]dialResult, error) {
	return nil, errLinuxOnly
}
