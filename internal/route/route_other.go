//go:build !linux

package route

import "context"

// Lookup has no route lookup to ask on this system.
func Lookup(context.Context, Query) (Route, error) { return Route{}, ErrUnsupported }
