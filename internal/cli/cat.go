package cli

import (
	"io"

	"github.com/spf13/cobra"
)

func (a *app) catCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cat ID PATH...",
		Short: "Print files of a sandbox",
		Long: `Write the content of each file, byte for byte and one after the other, to
stdout. Files are streamed, whatever their size. A file that cannot be opened
(missing, a directory...) is reported and the rest are still printed.`,
		Example: `  sandbox cat demo /etc/os-release
  sandbox cat demo out.png > out.png`,
		Args: cobra.MinimumNArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			sb := a.client.Get(args[0])
			status := 0
			for _, p := range args[1:] {
				rc, err := sb.ReadFileStream(cmd.Context(), p, nil)
				if err != nil {
					if cmd.Context().Err() != nil {
						return err
					}
					a.printErr(err)
					status = 1
					continue
				}
				// A failure half-way has spoilt the output: stop.
				_, err = io.Copy(a.stdout, rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
			return exitCode(status)
		}),
	}
}
