package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// GitCheckoutOptions adjust [Sandbox.GitCheckout]. The zero value clones
// the default branch, with its whole history, into /workspace/<repo name>.
type GitCheckoutOptions struct {
	// Branch is the branch (or tag) to check out; empty means the
	// repository's default branch.
	Branch string
	// TargetDir is where to clone to; empty means /workspace/<repo name>.
	// A relative directory resolves against the session's current
	// directory.
	TargetDir string
	// Depth, if positive, makes a shallow clone of that many commits.
	Depth int
	// Timeout, if positive, bounds the clone on the daemon's side; it is
	// sent in whole milliseconds, rounded up.
	Timeout time.Duration
}

// GitCheckout clones the git repository at repoURL into the sandbox and
// checks out a branch, and returns what it checked out: the branch, the
// directory and the commit. Credentials may be put in the URL
// ("https://TOKEN@host/org/repo.git"); the daemon keeps them out of the
// result and of its error messages, and so does the SDK.
//
// It returns ErrGitRepoNotFound if there is no repository at repoURL,
// ErrGitBranchNotFound if it has no such branch, ErrGitAuthFailed if the
// host refused the credentials (or asked for some), ErrFileExists if the
// target directory exists and is not empty, and ErrTimeout if the clone
// ran out of time. It is not retried. opts may be nil.
func (t *target) GitCheckout(ctx context.Context, repoURL string, opts *GitCheckoutOptions) (*api.GitCheckoutResult, error) {
	req := api.GitCheckoutRequest{RepoURL: repoURL, SessionID: t.sessionID}
	if opts != nil {
		req.Branch, req.TargetDir, req.Depth, req.TimeoutMs = opts.Branch, opts.TargetDir, opts.Depth, millis(opts.Timeout)
	}
	return call[api.GitCheckoutResult](ctx, t, fmt.Sprintf("git checkout %s in %s", redactURL(repoURL), t.describe()), once, http.MethodPost, "/git/checkout", nil, req)
}

// redactURL returns a repository URL without the credentials it may hold
// in its user info.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
