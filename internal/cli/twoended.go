package cli

import (
	"net"

	"github.com/spf13/pflag"

	"github.com/ecmpscan/ecmpscan/internal/responder"
)

// twoEndedFlags ask the target's responder what arrived (sweep and trace
// --responder).
type twoEndedFlags struct {
	responder string // HOST:PORT of the target's responder
	tokenFile string
}

func (f *twoEndedFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&f.responder, "responder", "", "HOST:PORT of an `ecmpscan responder` on the target's host: it reports which SYNs arrived, so each failing flow's direction is known")
	fl.StringVar(&f.tokenFile, "token-file", "", "with --responder: the shared token's file (first line; default $"+responder.TokenEnv+")")
}

// client checks --responder and loads the token before anything is sent;
// nil without --responder.
func (f *twoEndedFlags) client() (*responder.Client, error) {
	if f.responder == "" {
		if f.tokenFile != "" {
			return nil, usageError("--token-file goes with --responder")
		}
		return nil, nil
	}
	if _, port, err := net.SplitHostPort(f.responder); err != nil || port == "" || port == "0" {
		return nil, usageError("--responder wants HOST:PORT, got %q", f.responder)
	}
	token, err := responder.LoadToken(f.tokenFile)
	if err != nil {
		return nil, &exitError{code: ExitUsage, err: err}
	}
	return &responder.Client{Addr: f.responder, Token: token}, nil
}
