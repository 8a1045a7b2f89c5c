package rawsock

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

var dropAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// A blocked Receive returns once its context ends, and once the socket is
// closed: the socket is in the netpoller, not a poll loop. Nothing is sent.
func TestReceiveUnblocks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a raw socket (run make test as root)")
	}
	c, err := Open(netip.MustParseAddr("127.0.0.1"), unix.SOCK_RAW, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AttachFilter(dropAll); err != nil { // nothing reaches it, even on a busy host
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	wait := func(what string, done <-chan error, want func(error) bool) {
		t.Helper()
		select {
		case err := <-done:
			if !want(err) {
				t.Errorf("%s: Receive returned %v", what, err)
			}
		case <-time.After(10 * time.Second): // a liveness bound, not a speed assert
			t.Fatalf("%s: Receive still blocked", what)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := c.Receive(ctx, buf); done <- err }()
	cancel()
	wait("cancel", done, func(err error) bool { return errors.Is(err, context.Canceled) })

	// The next Receive, with a live context, is not cut by the old cancel.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	go func() { _, err := c.Receive(ctx2, buf); done <- err }()
	wait("second receive", done, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) })

	go func() { _, err := c.Receive(context.Background(), buf); done <- err }()
	c.Close()
	wait("close", done, func(err error) bool { return errors.Is(err, os.ErrClosed) })
}
