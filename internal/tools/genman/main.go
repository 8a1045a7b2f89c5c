// Command genman writes ecmpscan's man pages, one per command, from the
// cobra command tree: go run ./internal/tools/genman DIR (make man).
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra/doc"

	"github.com/ecmpscan/ecmpscan/internal/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: genman DIR")
		os.Exit(2)
	}
	dir := os.Args[1]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	root := cli.NewRootCommand(cli.OSStreams())
	root.DisableAutoGenTag = true // pages stay the same from one build to the next
	header := &doc.GenManHeader{Title: "ECMPSCAN", Section: "1", Source: "ecmpscan", Manual: "ecmpscan manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
