package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// commit is set at build time by the Makefile (-ldflags -X), for builds
// where Go records no VCS information.
var commit string

// versionString is the version, commit and Go version of this binary, from
// its build information.
func versionString() string {
	version, rev, modified := "devel", commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value[:min(12, len(s.Value))]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if modified {
		rev += "+dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s/%s)", version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
