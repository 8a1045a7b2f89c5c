package responder

import (
	"bufio"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// MinTokenLen is the shortest token accepted.
const MinTokenLen = 32

// TokenEnv names the environment variable a token may come from.
const TokenEnv = "ECMPSCAN_TOKEN"

// ErrToken is wrapped by every token loading error.
var ErrToken = errors.New("bad token")

// NewToken returns a fresh random token: 32 random bytes in hex.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// WriteNewToken writes a fresh token to path, readable by its owner only;
// it refuses to overwrite a file.
func WriteNewToken(path string) error {
	tok, err := NewToken()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, tok); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadToken reads the token from the first line of path, or, when path is
// empty, from $ECMPSCAN_TOKEN.
func LoadToken(path string) ([]byte, error) {
	var tok string
	switch {
	case path != "":
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrToken, err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			tok = sc.Text()
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrToken, path, err)
		}
	default:
		tok = os.Getenv(TokenEnv)
		if tok == "" {
			return nil, fmt.Errorf("%w: give --token-file FILE or set %s", ErrToken, TokenEnv)
		}
	}
	tok = strings.TrimSpace(tok)
	if len(tok) < MinTokenLen {
		return nil, fmt.Errorf("%w: a token has at least %d characters (ecmpscan responder --new-token FILE makes one)", ErrToken, MinTokenLen)
	}
	return []byte(tok), nil
}

// MaxSkew is how far a request's timestamp may be from the responder's
// clock.
const MaxSkew = 30 * time.Second

// maxNonces bounds the replay cache: with MaxSkew it allows a sustained
// rate far above what the request limit lets through.
const maxNonces = 1 << 16

// Guard authenticates requests: the MAC in constant time, the timestamp
// within MaxSkew, and each nonce once.
type Guard struct {
	token []byte
	mu    sync.Mutex
	seen  map[string]time.Time // nonce -> when it may be forgotten
}

// NewGuard returns a guard for the token.
func NewGuard(token []byte) *Guard {
	return &Guard{token: token, seen: map[string]time.Time{}}
}

// Check authenticates a decoded request at time now.
func (g *Guard) Check(r Request, now time.Time) error {
	want := mac(g.token, signedBytes(r.Op, r.Nonce, r.Time, r.Body))
	got, err := hex.DecodeString(r.MAC)
	if err != nil || !hmac.Equal(got, want) {
		return fmt.Errorf("%w: wrong token or altered request", ErrAuth)
	}
	at := time.UnixMilli(r.Time)
	if d := now.Sub(at); d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("%w: timestamp %s off by %s (clocks must agree within %s)", ErrReplay, at.UTC().Format(time.RFC3339), d.Round(time.Second), MaxSkew)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for n, until := range g.seen {
		if now.After(until) {
			delete(g.seen, n)
		}
	}
	if _, ok := g.seen[r.Nonce]; ok {
		return fmt.Errorf("%w: nonce already used", ErrReplay)
	}
	if len(g.seen) >= maxNonces {
		return fmt.Errorf("%w: replay cache full", ErrBusy)
	}
	g.seen[r.Nonce] = now.Add(2 * MaxSkew)
	return nil
}

// Sign builds the response to the request with this nonce.
func Sign(token []byte, nonce string, errText string, body any) (Response, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return Response{}, err
		}
	}
	r := Response{Error: errText, Body: b}
	r.MAC = hex.EncodeToString(mac(token, responseBytes(nonce, errText, b)))
	return r, nil
}

// Refusal is a request the responder authenticated and said no to.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return "refused: " + r.Reason }

// Refusal marks it as the responder's answer, not a failure to reach it.
func (r *Refusal) Refusal() bool { return true }

// Open checks a response to the request with this nonce and decodes its
// body into v.
func Open(token []byte, nonce string, r Response, v any) error {
	got, err := hex.DecodeString(r.MAC)
	if err != nil || !hmac.Equal(got, mac(token, responseBytes(nonce, r.Error, r.Body))) {
		return fmt.Errorf("%w: the response is not the responder's (wrong token?)", ErrAuth)
	}
	if r.Error != "" {
		return &Refusal{Reason: r.Error}
	}
	if v == nil {
		return nil
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%w: response body: %v", ErrMalformed, err)
	}
	return nil
}
