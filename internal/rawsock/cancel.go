package rawsock

import (
	"context"
	"sync"
	"time"
)

// ReadCanceller lets a context cut a blocking read on a socket that has
// read deadlines: when the context ends, the deadline is set in the past.
// Reads come one after another, and a cancel that fires late (its read has
// already returned) must not cut the next one, so each read has a
// generation and only the current one can be cut.
type ReadCanceller struct {
	// SetReadDeadline is the socket's.
	SetReadDeadline func(time.Time) error

	mu  sync.Mutex
	gen uint64
}

// Watch clears any deadline a cut read left behind and arranges for ctx to
// cut the read that follows. Call stop once the read has returned.
func (c *ReadCanceller) Watch(ctx context.Context) (stop func() bool) {
	c.mu.Lock()
	c.gen++
	gen := c.gen
	_ = c.SetReadDeadline(time.Time{})
	c.mu.Unlock()
	return context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen == gen {
			_ = c.SetReadDeadline(time.Unix(1, 0))
		}
	})
}
