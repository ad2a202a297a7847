package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/api"
)

func (a *app) createCmd() *cobra.Command {
	var (
		req         api.CreateSandboxRequest
		res         api.Resources
		labels, env []string
	)
	cmd := &cobra.Command{
		Use:   "create ID",
		Short: "Create a sandbox with options",
		Long: `Create the sandbox ID with the given options and print its ID. Other
commands create a sandbox with default options on first use; create is for
choosing the image, limits, labels or environment up front.`,
		Example: `  sandbox create demo --memory 2048 --cpus 2 --label team=ml --env PYTHONUNBUFFERED=1`,
		Args:    cobra.ExactArgs(1),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			var err error
			if req.Labels, err = keyValues("label", labels); err != nil {
				return err
			}
			if req.Env, err = keyValues("env", env); err != nil {
				return err
			}
			if res != (api.Resources{}) {
				req.Resources = &res
			}
			sb, err := a.client.Create(cmd.Context(), args[0], &req)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, sb.ID())
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&req.Image, "image", "", "image to start from (default: the daemon's)")
	f.Int64Var(&res.MemoryMB, "memory", 0, "memory limit in MiB")
	f.Float64Var(&res.CPUs, "cpus", 0, "CPU limit, in CPUs")
	f.Int64Var(&res.Pids, "pids", 0, "limit on the number of processes")
	f.Int64Var(&res.DiskMB, "disk", 0, "disk limit in MiB")
	f.StringArrayVarP(&labels, "label", "l", nil, "label the sandbox, k=v (repeatable)")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable for every command, KEY=VALUE (repeatable)")
	f.StringVar(&req.Cwd, "cwd", "", "default working directory (default /workspace)")
	f.StringVar(&req.SleepAfter, "sleep-after", "", "sleep after this long without activity, e.g. 10m")
	f.BoolVar(&req.KeepAlive, "keep-alive", false, "never put the sandbox to sleep")
	f.StringVar(&req.Network, "network", "", "network mode: none or bridge")
	return cmd
}
