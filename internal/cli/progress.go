package cli

import (
	"fmt"
	"sync"

	"github.com/ecmpscan/ecmpscan/probe"
)

// progress draws one status line on stderr, only when stderr is a terminal.
type progress struct {
	mu      sync.Mutex
	s       *Streams
	enabled bool
	drawn   bool
}

func newProgress(s *Streams, quiet bool) *progress {
	return &progress{s: s, enabled: s.ErrTTY && !quiet}
}

func (p *progress) update(pr probe.Progress) {
	if !p.enabled {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.s.Err, "\r\x1b[Ksent %d/%d probes, %d done", pr.Sent, pr.Total, pr.Resolved)
	p.drawn = true
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.s.Err, "\r\x1b[K")
	}
}
