// Package cli wires the command line: flags into config structs, one Run per
// command, results into a renderer, and errors into the documented exit codes.
package cli

import (
	"io"
	"os"

	"golang.org/x/term"
)

// Streams are the process's standard streams, injected so commands can be
// tested without a terminal.
type Streams struct {
	In             io.Reader
	Out, Err       io.Writer
	OutTTY, ErrTTY bool
	Getenv         func(string) string
}

// OSStreams are the real standard streams, with terminal detection.
func OSStreams() *Streams {
	return &Streams{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
		OutTTY: isTerminal(os.Stdout), ErrTTY: isTerminal(os.Stderr),
		Getenv: os.Getenv,
	}
}

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }
