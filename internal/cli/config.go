package cli

import (
	"cmp"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

// withClient returns a RunE that sets a.client to a client of the daemon named
// by the global flags, then calls run.
func (a *app) withClient(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		opts, err := a.options(cmd.Flag("token-file").Changed)
		if err == nil {
			a.client, err = sandbox.NewClient(opts)
		}
		if err != nil {
			return err
		}
		return run(cmd, args)
	}
}

// options resolves the daemon's URL and token. For each, a flag beats the
// environment; the token file is read only when neither gives a token. The
// default token file may be missing or unreadable (the daemon then answers
// UNAUTHORIZED), but one named with --token-file must be readable.
func (a *app) options(tokenFileSet bool) (sandbox.Options, error) {
	opts := sandbox.Options{
		URL:   cmp.Or(a.url, a.getenv(sandbox.EnvURL)),
		Token: cmp.Or(a.token, a.getenv(sandbox.EnvToken)),
	}
	if opts.Token != "" {
		return opts, nil
	}
	b, err := os.ReadFile(a.tokenFile)
	switch {
	case err == nil:
		opts.Token = strings.TrimSpace(string(b))
	case tokenFileSet:
		return opts, fmt.Errorf("read token: %w", err)
	}
	return opts, nil
}
