package cli

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxd/sandboxd/sandbox"
)

func (a *app) cpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories between here and a sandbox",
		Long: `Copy a file or a directory tree into a sandbox or out of one. One of SRC and
DST is ID:PATH, a path in the sandbox ID (relative to its working directory,
/workspace by default); the other is a local path, or - for stdin or stdout.
A local path with a colon in its first element reads as ID:PATH: write ./a:b.

Files are streamed, whatever their size. A file copied onto a directory, or
onto a path ending in /, goes into it under its own name. A directory copied
onto an existing directory goes into it under its own name, else it becomes
DST; SRC ending in /. copies the directory's content instead. Directories
travel as tar streams, and need tar in the sandbox; permission bits and
symbolic links are kept. A download refuses entries that would land
outside DST, and skips (reporting each, and exiting with status 1) symbolic
links that point outside it, such as absolute ones. A directory copied to - is written to stdout as a tar stream.`,
		Example: `  sandbox cp ./app demo:/workspace
  sandbox cp data.csv demo:data/
  sandbox cp demo:/workspace/out.png .
  sandbox cp demo:/var/log/app.log - | less
  tar -cz src | sandbox cp - demo:/tmp/src.tgz`,
		Args: cobra.ExactArgs(2),
		RunE: a.withClient(func(cmd *cobra.Command, args []string) error {
			srcID, src := parseCpArg(args[0])
			dstID, dst := parseCpArg(args[1])
			switch {
			case srcID != "" && dstID != "":
				return usagef("copy between two sandboxes is not supported: one side must be local")
			case srcID == "" && dstID == "":
				return usagef("one of SRC and DST must be ID:PATH, a path in a sandbox")
			case dstID != "":
				return a.upload(cmd.Context(), a.client.Get(dstID), src, dst)
			}
			return a.download(cmd.Context(), a.client.Get(srcID), src, dst)
		}),
	}
}

// parseCpArg reads ID:PATH (a colon before any slash) as the path p in the
// sandbox id, anything else as the local path p (id is then ""). An empty
// sandbox path means the working directory.
func parseCpArg(s string) (id, p string) {
	i := strings.IndexByte(s, ':')
	if i <= 0 || strings.ContainsAny(s[:i], `/\`) {
		return "", s
	}
	return s[:i], cmp.Or(s[i+1:], ".")
}

// upload copies the local file or directory src ("-": stdin) to dst in sb.
func (a *app) upload(ctx context.Context, sb *sandbox.Sandbox, src, dst string) error {
	if src == "-" {
		_, err := sb.WriteFileStream(ctx, dst, a.stdin, nil)
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file or a directory", src)
	}
	into := !fi.IsDir() && strings.HasSuffix(dst, "/")
	if !into && !(fi.IsDir() && contentOnly(src)) {
		if into, err = remoteIsDir(ctx, sb, dst); err != nil {
			return err
		}
	}
	if into {
		dst = path.Join(dst, filepath.Base(filepath.Clean(src)))
	}
	if fi.IsDir() {
		return a.uploadDir(ctx, sb, src, dst)
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = sb.WriteFileStream(ctx, dst, f, &sandbox.WriteOptions{Mode: fi.Mode().Perm()})
	return err
}

// uploadDir copies the local directory src to the directory dst in sb: it
// streams a tar of it to a temporary file in the sandbox and has the
// sandbox's tar extract it.
func (a *app) uploadDir(ctx context.Context, sb *sandbox.Sandbox, src, dst string) error {
	tmp := remoteTemp()
	pr, pw := io.Pipe()
	tarred := make(chan error, 1)
	go func() { // owned by uploadDir, which waits for it
		err := writeTar(pw, src)
		pw.CloseWithError(err)
		tarred <- err
	}()
	_, err := sb.WriteFileStream(ctx, tmp, pr, nil)
	pr.CloseWithError(errors.New("upload ended")) // unblocks the writer if the upload failed early
	if tarErr := <-tarred; tarErr != nil {
		return tarErr
	}
	if err != nil {
		return err
	}
	// A subshell: exit must not end the session's shell, nor s linger in it.
	script := fmt.Sprintf("(mkdir -p %s && tar -xf %s -C %s; s=$?; rm -f %s; exit $s)",
		shellQuote(dst), shellQuote(tmp), shellQuote(dst), shellQuote(tmp))
	if err := remoteRun(ctx, sb, "extract into "+dst, script); err != nil {
		cleanup(ctx, sb, tmp)
		return err
	}
	return nil
}

// download copies the file or directory src in sb to the local dst ("-":
// stdout, a directory as a tar stream). A directory is archived by the
// sandbox's tar to a temporary file, which is streamed down and extracted
// here.
func (a *app) download(ctx context.Context, sb *sandbox.Sandbox, src, dst string) error {
	rc, err := sb.ReadFileStream(ctx, src, nil)
	isDir := errors.Is(err, sandbox.ErrIsDirectory)
	if isDir {
		tmp := remoteTemp()
		defer cleanup(ctx, sb, tmp)
		err = remoteRun(ctx, sb, "archive "+src, fmt.Sprintf("tar -cf %s -C %s .", shellQuote(tmp), shellQuote(src)))
		if err == nil {
			rc, err = sb.ReadFileStream(ctx, tmp, nil)
		}
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	switch {
	case dst == "-":
		_, err = io.Copy(a.stdout, rc)
		return err
	case isDir:
		return a.extract(rc, src, dst)
	}
	if fi, err := os.Stat(dst); (err == nil && fi.IsDir()) || strings.HasSuffix(dst, string(filepath.Separator)) {
		dst = filepath.Join(dst, path.Base(src))
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("download %s to %s: %w", src, dst, err)
	}
	return nil
}

// extract extracts the tar stream r of the sandbox's directory src to the
// local dst, reporting each entry skipped.
func (a *app) extract(r io.Reader, src, dst string) error {
	if fi, err := os.Stat(dst); err == nil && fi.IsDir() && !contentOnly(src) {
		dst = filepath.Join(dst, path.Base(path.Clean(src)))
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	skipped := 0
	err := extractTar(r, dst, func(name, why string) {
		fmt.Fprintf(a.stderr, "sandbox: skipped %s: %s\n", name, why)
		skipped++
	})
	if err != nil {
		return fmt.Errorf("download %s to %s: %w", src, dst, err)
	}
	if skipped > 0 {
		return exitCode(1) // all else copied, each skip reported
	}
	return nil
}

// contentOnly reports whether a directory path ends in "/.", which copies
// the directory's content rather than the directory.
func contentOnly(p string) bool {
	return p == "." || strings.HasSuffix(p, "/.") || strings.HasSuffix(p, string(filepath.Separator)+".")
}

// remoteIsDir reports whether p is a directory in sb.
func remoteIsDir(ctx context.Context, sb *sandbox.Sandbox, p string) (bool, error) {
	res, err := sb.Exec(ctx, "test -d "+shellQuote(p), nil)
	if err != nil {
		return false, err
	}
	return res.ExitCode == 0, nil
}

// remoteRun runs script in sb; its failure is an error saying what failed.
func remoteRun(ctx context.Context, sb *sandbox.Sandbox, what, script string) error {
	res, err := sb.Exec(ctx, script, nil)
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("%s in the sandbox: exit status %d: %s", what, res.ExitCode, strings.TrimSpace(res.Stderr))
	}
	return err
}

// remoteTemp returns a fresh name for a temporary file in the sandbox.
func remoteTemp() string {
	return "/tmp/.sandbox-cp-" + strings.ToLower(rand.Text()) + ".tar"
}

// cleanup deletes the temporary file tmp from sb, even if ctx has ended
// (as on Ctrl-C); failures are ignored.
func cleanup(ctx context.Context, sb *sandbox.Sandbox, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = sb.DeleteFile(ctx, tmp)
}
