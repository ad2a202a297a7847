package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent/core"
	"github.com/sandboxd/sandboxd/internal/errdefs"
)

const (
	gitDefaultTimeout = 5 * time.Minute
	gitMaxOutput      = 64 << 10 // bytes of git's output kept (the end of it)
	gitMaxMessage     = 4 << 10  // bytes of it in an error message
)

// gitCredentialHelper answers git's credential requests for the host
// SANDBOXD_GIT_HOST with SANDBOXD_GIT_USERNAME and SANDBOXD_GIT_PASSWORD,
// and nothing else (a redirect to another host gets no credentials); it
// stores and erases nothing. It holds no credential itself: they travel
// in git's environment, never on a command line.
const gitCredentialHelper = `!f() { test "$1" = get || exit 0; h=; ` +
	`while IFS= read -r l; do case "$l" in host=*) h=${l#host=};; esac; done; ` +
	`test "$h" = "$SANDBOXD_GIT_HOST" || exit 0; ` +
	`printf 'username=%s\npassword=%s\n' "$SANDBOXD_GIT_USERNAME" "$SANDBOXD_GIT_PASSWORD"; }; f`

// handleGitCheckout clones a repository with the sandbox's git, as the
// session's user, in the session's environment and directory (relative
// local paths and targetDir resolve there):
//
//	git clone [--depth N --single-branch --no-local] [--branch B] -- URL DIR
//
// targetDir defaults to <the sandbox's working directory>/<repo name>
// (/workspace/<name>); it must not exist or be an empty directory
// (FILE_EXISTS). Credentials in an http(s) URL (user:token@, or a token
// as the user) are taken out of it: git gets the bare URL, which is what
// the clone's remote, the result, git's messages and the process list
// show, and the credentials through a credential helper that reads them
// from git's environment. timeoutMs (default 5 min) bounds the clone; past
// it, or when the caller goes away, git and all it started are killed,
// what it left is removed, and the answer is 408 TIMEOUT. Failures map
// from git's messages to GIT_REPOSITORY_NOT_FOUND, GIT_BRANCH_NOT_FOUND,
// GIT_AUTH_FAILED, else INTERNAL_ERROR with git's message.
func (svc *Service) handleGitCheckout(r *http.Request, req *api.GitCheckoutRequest) (api.GitCheckoutResult, error) {
	s, err := svc.sessions.ForRequest(r, req.SessionID)
	if err != nil {
		return api.GitCheckoutResult{}, err
	}
	src, err := parseGitSource(req.RepoURL)
	if err != nil {
		return api.GitCheckoutResult{}, err
	}
	switch {
	case req.Depth < 0:
		err = fmt.Errorf("%w: depth must not be negative", errdefs.ErrInvalidArgument)
	case req.TimeoutMs < 0:
		err = fmt.Errorf("%w: timeoutMs must not be negative", errdefs.ErrInvalidArgument)
	case strings.HasPrefix(req.Branch, "-") || strings.ContainsFunc(req.Branch, isControl):
		err = fmt.Errorf("%w: branch %q is not a branch name", errdefs.ErrInvalidArgument, req.Branch)
	case req.TargetDir == "" && src.name == "":
		err = fmt.Errorf("%w: no repository name in repoUrl to name the directory after: give targetDir", errdefs.ErrInvalidArgument)
	}
	if err != nil {
		return api.GitCheckoutResult{}, err
	}
	target := req.TargetDir
	if target == "" {
		target = filepath.Join(svc.workdir, src.name)
	}
	if target, err = sessionPath(s, target); err != nil {
		return api.GitCheckoutResult{}, err
	}
	if _, busy := cloning.LoadOrStore(target, true); busy {
		return api.GitCheckoutResult{}, codedErr(api.CodeFileExists, errdefs.ErrConflict, "clone into %s: another clone into it is running", target)
	}
	defer cloning.Delete(target)
	existed, err := checkCloneTarget(target)
	if err != nil {
		return api.GitCheckoutResult{}, err
	}
	timeout := gitDefaultTimeout
	if req.TimeoutMs > 0 {
		timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()

	info := s.Info()
	env := gitEnv(info.Env)
	cloneEnv, args := env, []string{"clone"}
	if src.user != "" || src.password != "" {
		// The configured helpers are reset first, so that none of them
		// stores the credentials.
		args = []string{"-c", "credential.helper=", "-c", "credential.helper=" + gitCredentialHelper, "clone"}
		cloneEnv = core.MergeEnv(env, map[string]string{
			"SANDBOXD_GIT_HOST": src.host, "SANDBOXD_GIT_USERNAME": src.user, "SANDBOXD_GIT_PASSWORD": src.password})
	}
	if req.Depth > 0 {
		// --no-local: a local path is cloned like a remote, so depth holds.
		args = append(args, "--depth", strconv.Itoa(req.Depth), "--single-branch", "--no-local")
	}
	if req.Branch != "" {
		args = append(args, "--branch", req.Branch)
	}
	args = append(args, "--", src.url, target)
	out, code, err := svc.runGit(ctx, info.Cwd, cloneEnv, args...)
	if err != nil || code != 0 {
		removeCloneTarget(target, existed)
		switch {
		case r.Context().Err() != nil:
			return api.GitCheckoutResult{}, r.Context().Err() // the caller is gone
		case ctx.Err() != nil:
			err = &errdefs.CodedError{Code: api.CodeTimeout, Kind: errdefs.ErrTimeout,
				Message: fmt.Sprintf("git clone of %s timed out after %d ms", src.url, timeout.Milliseconds())}
		case err == nil:
			err = gitCloneError(out, src)
		}
		return api.GitCheckoutResult{}, err
	}
	res := api.GitCheckoutResult{RepoURL: src.url, Branch: req.Branch, TargetDir: target}
	ctx, cancel = context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	// An empty repository has no HEAD commit: Commit stays empty.
	if out, code, err := svc.runGit(ctx, target, env, "rev-parse", "--verify", "-q", "HEAD"); err == nil && code == 0 {
		res.Commit = strings.TrimSpace(string(out))
	}
	if res.Branch == "" {
		if out, code, err := svc.runGit(ctx, target, env, "symbolic-ref", "-q", "--short", "HEAD"); err == nil && code == 0 {
			res.Branch = strings.TrimSpace(string(out))
		}
	}
	return res, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// cloning holds the target directories of the clones running, so that a
// second clone into one fails at once instead of failing later and
// removing, as failed clones do, the first one's files.
var cloning sync.Map

// gitSource is a repository URL taken apart.
type gitSource struct {
	url      string // what git is given, and what is shown: without credentials
	user     string // credentials for host, from the URL
	password string
	host     string
	name     string // the repository's name: the last path element, without .git
}

// parseGitSource checks a repository URL: a URL (http, https, ssh, git,
// file), scp-like syntax (user@host:path), or a local path. Errors never
// quote it: it may hold credentials.
func parseGitSource(raw string) (gitSource, error) {
	switch {
	case raw == "":
		return gitSource{}, fmt.Errorf("%w: repoUrl is empty", errdefs.ErrInvalidArgument)
	case strings.HasPrefix(raw, "-") || strings.ContainsFunc(raw, isControl) || len(raw) > 8192:
		return gitSource{}, fmt.Errorf("%w: repoUrl is not a repository URL", errdefs.ErrInvalidArgument)
	}
	src := gitSource{url: raw}
	repoPath := raw
	if strings.Contains(raw, "://") {
		u, err := url.Parse(raw)
		if err != nil {
			return gitSource{}, fmt.Errorf("%w: repoUrl is not a valid URL", errdefs.ErrInvalidArgument)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" {
				return gitSource{}, fmt.Errorf("%w: repoUrl has no host", errdefs.ErrInvalidArgument)
			}
			if u.User != nil {
				src.user = u.User.Username()
				src.password, _ = u.User.Password()
				src.host = u.Host
			}
			u.User = nil
		case "ssh", "git+ssh", "ssh+git":
			if u.User != nil { // ssh takes a user, never a password
				u.User = url.User(u.User.Username())
			}
		case "git", "file":
			u.User = nil
		default:
			return gitSource{}, fmt.Errorf("%w: repoUrl scheme %q: use https, http, ssh, git or file", errdefs.ErrInvalidArgument, u.Scheme)
		}
		src.url = u.String()
		repoPath = u.Path
	} else if i := strings.Index(raw, ":"); i > 0 && !strings.Contains(raw[:i], "/") {
		repoPath = raw[i+1:] // user@host:path
	}
	name := path.Base(strings.TrimRight(repoPath, "/"))
	name = strings.TrimSuffix(name, ".git")
	if name != "." && name != ".." && name != "/" {
		src.name = name
	}
	return src, nil
}

// secrets returns what must never be shown: the password, and a user
// given without one (a token as the user, "https://TOKEN@host/...")
// unless it is too short to be a token.
func (s gitSource) secrets() []string {
	var out []string
	if s.password != "" {
		out = append(out, s.password)
	} else if len(s.user) >= 8 {
		out = append(out, s.user)
	}
	return out
}

// gitEnv is the environment git runs in: the agent's, the session's,
// never a prompt (git fails instead of waiting for input no one gives).
func gitEnv(sessionEnv map[string]string) []string {
	env := core.MergeEnv(core.MergeEnv(os.Environ(), sessionEnv), map[string]string{
		"GIT_TERMINAL_PROMPT": "0",
		"GCM_INTERACTIVE":     "never",
	})
	if _, ok := os.LookupEnv("GIT_SSH_COMMAND"); !ok && sessionEnv["GIT_SSH_COMMAND"] == "" {
		env = append(env, "GIT_SSH_COMMAND=ssh -o BatchMode=yes")
	}
	return env
}

// checkCloneTarget reports whether dir exists (as an empty directory);
// anything else there gives FILE_EXISTS.
func checkCloneTarget(dir string) (bool, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fsError("clone into", dir, err)
	}
	if !fi.IsDir() {
		return false, codedErr(api.CodeFileExists, errdefs.ErrConflict, "clone into %s: it exists and is not a directory", dir)
	}
	d, err := os.Open(dir)
	if err != nil {
		return false, fsError("clone into", dir, err)
	}
	defer d.Close()
	if _, err := d.Readdirnames(1); err != io.EOF {
		return false, codedErr(api.CodeFileExists, errdefs.ErrConflict, "clone into %s: the directory exists and is not empty", dir)
	}
	return true, nil
}

// removeCloneTarget removes what a failed clone left: the directory, or
// the contents of the empty directory that was there.
func removeCloneTarget(dir string, existed bool) {
	if !existed {
		os.RemoveAll(dir)
		return
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// gitCloneError maps what a failed git clone said to an error code.
func gitCloneError(out []byte, src gitSource) error {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "Cloning into") {
			lines = append(lines, l)
		}
	}
	msg := strings.Join(lines, "\n")
	for _, s := range src.secrets() {
		msg = strings.ReplaceAll(msg, s, "***")
	}
	if len(msg) > gitMaxMessage {
		msg = "..." + msg[len(msg)-gitMaxMessage:]
	}
	if msg == "" {
		msg = "git clone failed"
	}
	lower := strings.ToLower(msg)
	has := func(subs ...string) bool {
		return slices.ContainsFunc(subs, func(s string) bool { return strings.Contains(lower, s) })
	}
	switch {
	case has("remote branch") && has("not found"):
		return codedErr(api.CodeGitBranchNotFound, errdefs.ErrNotFound, "%s", msg)
	case has("authentication failed", "could not read username", "could not read password", "permission denied (publickey",
		"invalid username or password", "returned error: 401", "returned error: 403", "http basic: access denied"):
		return codedErr(api.CodeGitAuthFailed, nil, "%s", msg)
	case has("repository not found", "does not exist", "does not appear to be a git repository", "not a git repository",
		"returned error: 404", "' not found"):
		return codedErr(api.CodeGitRepoNotFound, errdefs.ErrNotFound, "%s", msg)
	}
	return codedErr(api.CodeInternal, nil, "git clone failed: %s", msg)
}

// runGit runs git with args in dir and returns the end of its output
// (stdout and stderr together) and its exit code. The process and all it
// starts are killed when ctx ends first; the error is then ctx's.
func (svc *Service) runGit(ctx context.Context, dir string, env []string, args ...string) ([]byte, int, error) {
	bin, err := exec.LookPath("git")
	if err != nil {
		return nil, 0, codedErr(api.CodeInternal, nil, "git is not installed in the sandbox")
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		dir = "/"
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return nil, 0, err
	}
	defer devnull.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	grp, err := svc.reaper.Cgroups().New("git", nil)
	if err != nil {
		pw.Close()
		pr.Close()
		return nil, 0, err
	}
	defer grp.Kill() // whatever git left behind
	p, exited, err := svc.reaper.Start(grp, bin, append([]string{"git"}, args...), &os.ProcAttr{
		Dir: dir, Env: env, Files: []*os.File{devnull, pw, pw},
		Sys: &unix.SysProcAttr{Setpgid: true},
	})
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, 0, fmt.Errorf("start git: %w", err)
	}
	outc := make(chan []byte, 1)
	go func() {
		var out []byte
		buf := make([]byte, 32<<10)
		for {
			n, err := pr.Read(buf)
			out = append(out, buf[:n]...)
			if len(out) > gitMaxOutput {
				out = append(out[:0], out[len(out)-gitMaxOutput:]...)
			}
			if err != nil {
				outc <- out
				return
			}
		}
	}()
	var ws unix.WaitStatus
	var killed error
	select {
	case ws = <-exited:
	case <-ctx.Done():
		killed = ctx.Err()
		grp.Kill()
		ws = <-exited
	}
	// Something git started may hold the pipe: read what is there, then stop.
	_ = pr.SetReadDeadline(time.Now().Add(core.DrainGrace))
	out := <-outc
	pr.Close()
	_ = p.Release()
	return out, core.ExitCode(ws), killed
}
