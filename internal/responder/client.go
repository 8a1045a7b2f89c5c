package responder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"time"
)

// Client talks to a responder. The control connection crosses the same
// fabric as the probes, possibly the bad member: each attempt is a new
// connection from a new, random source port (another five-tuple, so likely
// another path), kept short, and Retries says how many attempts it took.
type Client struct {
	Addr  string // HOST:PORT of the responder
	Token []byte
	// Dial opens a connection (default net.Dialer.DialContext).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Attempts per call (default 10: behind a bad member of two, all of
	// them fail once in a thousand calls) and the time each may take
	// (1.5s).
	Attempts int
	Timeout  time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	// Retries counts the attempts beyond the first that calls needed.
	Retries int
}

// Register starts a run; run is the client's id for it (NewRunID).
func (c *Client) Register(ctx context.Context, r Register) (Registered, error) {
	var out Registered
	err := c.call(ctx, OpRegister, r, &out)
	return out, err
}

// Report fetches a run's arrivals.
func (c *Client) Report(ctx context.Context, run string) (Report, error) {
	var out Report
	err := c.call(ctx, OpReport, ReportRequest{Run: run}, &out)
	return out, err
}

// Reverse asks the responder to trace the return paths of some of a run's
// flows; Report then carries them as they come.
func (c *Client) Reverse(ctx context.Context, r ReverseRequest) (ReverseStarted, error) {
	var out ReverseStarted
	err := c.call(ctx, OpReverse, r, &out)
	return out, err
}

// Name is the responder's HOST:PORT.
func (c *Client) Name() string { return c.Addr }

// Retried counts the attempts beyond the first that calls needed.
func (c *Client) Retried() int { return c.Retries }

// NewRunID returns a fresh run id.
func NewRunID() string { return newRunID() }

// errRefused is an answer that another attempt will not change.
type errRefused struct{ error }

func (c *Client) call(ctx context.Context, op string, body, out any) error {
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 10
	}
	var last error
	for i := range attempts {
		if i > 0 {
			c.Retries++
		}
		err := c.once(ctx, op, body, out)
		var refused errRefused
		switch {
		case err == nil:
			return nil
		case errors.As(err, &refused):
			return refused.error
		case ctx.Err() != nil:
			return ctx.Err()
		}
		last = err
	}
	return fmt.Errorf("responder %s: %d attempts from different source ports failed, the last: %w", c.Addr, attempts, last)
}

func (c *Client) once(ctx context.Context, op string, body, out any) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 1500 * time.Millisecond
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := c.Dial
	if dial == nil {
		// A source port of our own choosing, random over the ephemeral
		// range: the kernel's next pick may hash onto the same bad member
		// again and again.
		d := &net.Dialer{LocalAddr: &net.TCPAddr{Port: 32768 + mrand.IntN(60999-32768+1)}}
		dial = d.DialContext
	}
	conn, err := dial(ctx, "tcp", c.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return err
	}
	req, err := NewRequest(c.Token, op, nonce, now(), body)
	if err != nil {
		return errRefused{err}
	}
	if err := WriteFrame(conn, req, MaxFrame); err != nil {
		return err
	}
	b, err := ReadFrame(conn, MaxResponse)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The connection worked both ways and was closed unanswered:
		// that is the responder refusing, not the path.
		return errRefused{&Refusal{Reason: "the responder closed the connection without an answer: a wrong token, a clock more than 30s off, or a peer not in its --allow (see its log)"}}
	}
	if err != nil {
		return fmt.Errorf("no answer: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return fmt.Errorf("%w: response: %v", ErrMalformed, err)
	}
	if err := Open(c.Token, hex.EncodeToString(nonce[:]), resp, out); err != nil {
		return errRefused{err}
	}
	return nil
}
