package cli

import (
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) exposeCmd() *cobra.Command {
	var (
		opts   sandbox.ExposePortOptions
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "expose ID PORT",
		Short: "Expose a port of a sandbox at a preview URL",
		Long: `Expose PORT (1024-65535) of the sandbox ID and print its preview URL,
http://{port}-{id}-{token}.{preview-domain}[:port]/, which proxies to the
service listening on that port inside the sandbox. Anyone holding the URL
may use it; its token is random unless --preview-token names one. Exposing an
exposed port again keeps its token, and renews the URL after the sandbox
restarted (old URLs then answer 410 STALE_PREVIEW_URL).`,
		Example: `  sandbox exec demo -- 'python3 -m http.server 8000 &'
  sandbox expose demo 8000 --name web
  curl "$(sandbox expose demo 8000)"`,
		Args: cobra.ExactArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			port, err := parsePort(args[1])
			if err != nil {
				return err
			}
			p, err := a.client.Get(args[0]).ExposePort(cmd.Context(), port, &opts)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a.stdout, p)
			}
			fmt.Fprintln(a.stdout, p.ExposedAt)
			return nil
		}),
	}
	cmd.Flags().StringVar(&opts.Name, "name", "", "a name for the port, shown by 'sandbox ports'")
	// Not --token: that is the global flag of the API token.
	cmd.Flags().StringVar(&opts.Token, "preview-token", "", "the URL's token, 1-16 characters of [a-z0-9_] (default: random)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print port, name, token and URL as JSON")
	return cmd
}

// parsePort reads a port number argument.
func parsePort(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, usagef("port %q: want a number in 1-65535", s)
	}
	return n, nil
}
