package agent_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/internal/agent"
	"github.com/sandboxd/sandboxd/internal/agentclient"
	"github.com/sandboxd/sandboxd/internal/testutil"
)

// testRepo is a repository made for a test: branch main with two commits,
// branch feature with one more, as a bare repository that dumb HTTP can
// serve too.
type testRepo struct {
	bare              string // .../repo.git
	mainHead, feature string // the branches' commits
}

// gitRepo makes a testRepo. It runs git from the test process, so it must
// run before startAgent: the agent reaps every child of its process.
func gitRepo(t *testing.T) testRepo {
	t.Helper()
	_, err := exec.LookPath("git")
	testutil.Requires(t, err == nil, "needs git")
	dir := t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		c := exec.Command("git", args...)
		c.Dir = dir
		c.Env = append(os.Environ(), "HOME="+dir, "GIT_CONFIG_NOSYSTEM=1", "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
			"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	commit := func(file string) {
		if err := os.WriteFile(filepath.Join(dir, "work", file), []byte(file), 0o644); err != nil {
			t.Fatal(err)
		}
		git("-C", "work", "add", file)
		git("-C", "work", "commit", "-q", "-m", "add "+file)
	}
	git("init", "-q", "-b", "main", "work")
	commit("a")
	commit("b")
	git("-C", "work", "checkout", "-q", "-b", "feature")
	commit("c")
	git("-C", "work", "checkout", "-q", "main")
	git("clone", "-q", "--bare", "work", "repo.git")
	git("-C", "repo.git", "update-server-info")
	return testRepo{bare: filepath.Join(dir, "repo.git"), mainHead: git("-C", "work", "rev-parse", "main"),
		feature: git("-C", "work", "rev-parse", "feature")}
}

func checkout(t *testing.T, c *agentclient.Client, req api.GitCheckoutRequest) (api.GitCheckoutResult, error) {
	t.Helper()
	var res api.GitCheckoutResult
	err := filesCall(t, c, "/v1/git/checkout", req, &res)
	return res, err
}

func TestGitCheckout(t *testing.T) {
	repo := gitRepo(t)
	c := startAgent(t)
	dir := t.TempDir()
	count := func(target string) string {
		return strings.TrimSpace(run(t, c, cmd("git -C "+target+" rev-list --count HEAD")).Stdout)
	}

	// A branch, one commit deep, from a file URL.
	res, err := checkout(t, c, api.GitCheckoutRequest{RepoURL: "file://" + repo.bare, Branch: "feature", Depth: 1, TargetDir: dir + "/shallow"})
	if err != nil {
		t.Fatal(err)
	}
	want := api.GitCheckoutResult{RepoURL: "file://" + repo.bare, Branch: "feature", TargetDir: dir + "/shallow", Commit: repo.feature}
	if res != want {
		t.Errorf("got %+v\nwant %+v", res, want)
	}
	if n := count(dir + "/shallow"); n != "1" {
		t.Errorf("depth 1 gave %s commits", n)
	}
	if b, _ := os.ReadFile(dir + "/shallow/c"); string(b) != "c" {
		t.Errorf("feature's file: %q", b)
	}

	// The default branch, whole, from a local path (--depth works there
	// too), into an empty directory, relative to the session's directory.
	if err := os.Mkdir(dir+"/empty", 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, c, cmd("cd "+dir))
	res, err = checkout(t, c, api.GitCheckoutRequest{RepoURL: repo.bare, TargetDir: "empty"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Branch != "main" || res.Commit != repo.mainHead || res.TargetDir != dir+"/empty" {
		t.Errorf("default branch: %+v", res)
	}
	if n := count(dir + "/empty"); n != "2" {
		t.Errorf("full clone: %s commits", n)
	}
	res, err = checkout(t, c, api.GitCheckoutRequest{RepoURL: repo.bare, Depth: 1, TargetDir: dir + "/local-shallow"})
	if err != nil || count(dir+"/local-shallow") != "1" || res.Commit != repo.mainHead {
		t.Errorf("depth 1 from a local path: %+v %v", res, err)
	}

	for _, tc := range []struct {
		name string
		req  api.GitCheckoutRequest
		code string
	}{
		{"missing repository", api.GitCheckoutRequest{RepoURL: dir + "/nope.git", TargetDir: dir + "/x1"}, api.CodeGitRepoNotFound},
		{"missing file URL", api.GitCheckoutRequest{RepoURL: "file://" + dir + "/nope.git", TargetDir: dir + "/x2"}, api.CodeGitRepoNotFound},
		{"missing branch", api.GitCheckoutRequest{RepoURL: repo.bare, Branch: "nope", TargetDir: dir + "/x3"}, api.CodeGitBranchNotFound},
		{"missing branch, shallow", api.GitCheckoutRequest{RepoURL: "file://" + repo.bare, Branch: "nope", Depth: 1, TargetDir: dir + "/x4"}, api.CodeGitBranchNotFound},
		{"non-empty target", api.GitCheckoutRequest{RepoURL: repo.bare, TargetDir: dir + "/shallow"}, api.CodeFileExists},
		{"file as target", api.GitCheckoutRequest{RepoURL: repo.bare, TargetDir: dir + "/shallow/c"}, api.CodeFileExists},
		{"empty URL", api.GitCheckoutRequest{TargetDir: dir + "/x5"}, api.CodeValidationFailed},
		{"option as URL", api.GitCheckoutRequest{RepoURL: "--upload-pack=touch /tmp/x", TargetDir: dir + "/x6"}, api.CodeValidationFailed},
		{"option as branch", api.GitCheckoutRequest{RepoURL: repo.bare, Branch: "-b", TargetDir: dir + "/x7"}, api.CodeValidationFailed},
		{"negative depth", api.GitCheckoutRequest{RepoURL: repo.bare, Depth: -1, TargetDir: dir + "/x8"}, api.CodeValidationFailed},
		{"unknown scheme", api.GitCheckoutRequest{RepoURL: "ftp://host/r.git", TargetDir: dir + "/x9"}, api.CodeValidationFailed},
		{"no name", api.GitCheckoutRequest{RepoURL: "file:///"}, api.CodeValidationFailed},
	} {
		_, err := checkout(t, c, tc.req)
		wantCode(t, tc.name, err, tc.code)
		if strings.HasPrefix(filepath.Base(tc.req.TargetDir), "x") {
			if _, err := os.Stat(tc.req.TargetDir); err == nil {
				t.Errorf("%s: left %s behind", tc.name, tc.req.TargetDir)
			}
		}
	}
	if _, err := os.Stat(dir + "/shallow/c"); err != nil {
		t.Errorf("a refused clone touched the existing target: %v", err)
	}
}

// gitServer serves the bare repositories under root over dumb HTTP, asking
// for user and password (if user is not empty). On each authorized request
// it checks that no process shows the password on its command line.
func gitServer(t *testing.T, root, user, password string, delay time.Duration) (url string, leaks func() []string) {
	t.Helper()
	var mu sync.Mutex
	var leaked []string
	files := http.FileServer(http.Dir(root))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); user != "" && (!ok || u != user || p != password) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		if password != "" { // git is waiting for this answer: look at its command line
			entries, _ := os.ReadDir("/proc")
			for _, e := range entries {
				if b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); bytes.Contains(b, []byte(password)) {
					mu.Lock()
					leaked = append(leaked, strings.ReplaceAll(string(b), "\x00", " "))
					mu.Unlock()
				}
			}
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, func() []string { mu.Lock(); defer mu.Unlock(); return leaked }
}

// Credentials in the URL reach the server and nothing else: not the
// answer, not error messages, not the clone's config, not the process
// list.
func TestGitCheckoutCredentials(t *testing.T) {
	repo := gitRepo(t)
	c := startAgent(t)
	dir := t.TempDir()
	const token = "s3cr3t-t0ken-value"
	base, leaks := gitServer(t, filepath.Dir(repo.bare), "alice", token, 0)
	withCreds := strings.Replace(base, "http://", "http://alice:"+token+"@", 1) + "/repo.git"
	clean := base + "/repo.git"

	res, err := checkout(t, c, api.GitCheckoutRequest{RepoURL: withCreds, TargetDir: dir + "/ok"})
	if err != nil {
		t.Fatal(err)
	}
	if res.RepoURL != clean || res.Commit != repo.mainHead || res.Branch != "main" {
		t.Errorf("result: %+v", res)
	}
	if b, _ := os.ReadFile(dir + "/ok/.git/config"); bytes.Contains(b, []byte(token)) || !bytes.Contains(b, []byte(clean)) {
		t.Errorf(".git/config:\n%s", b)
	}
	if l := leaks(); len(l) > 0 {
		t.Errorf("the token was on a command line: %q", l)
	}

	for _, tc := range []struct {
		name, url, code string
	}{
		{"wrong token", strings.Replace(withCreds, token, token+"-wrong", 1), api.CodeGitAuthFailed},
		{"no credentials", clean, api.CodeGitAuthFailed},
		{"missing repository", strings.Replace(withCreds, "repo.git", "nope.git", 1), api.CodeGitRepoNotFound},
		{"missing branch", withCreds, api.CodeGitBranchNotFound},
	} {
		req := api.GitCheckoutRequest{RepoURL: tc.url, TargetDir: dir + "/" + strings.ReplaceAll(tc.name, " ", "-")}
		if tc.name == "missing branch" {
			req.Branch = "nope"
		}
		_, err := checkout(t, c, req)
		wantCode(t, tc.name, err, tc.code)
		if err != nil && strings.Contains(err.Error(), token) {
			t.Errorf("%s: the token is in the message: %v", tc.name, err)
		}
	}

	// A token as the user, with no password.
	base2, _ := gitServer(t, filepath.Dir(repo.bare), "ghp_0123456789abcdef", "", 0)
	res, err = checkout(t, c, api.GitCheckoutRequest{RepoURL: strings.Replace(base2, "http://", "http://ghp_0123456789abcdef@", 1) + "/repo.git", TargetDir: dir + "/user-token"})
	if err != nil || strings.Contains(res.RepoURL, "ghp_") {
		t.Errorf("token as the user: %+v %v", res, err)
	}
}

// timeoutMs stops a clone that takes too long, and what it left goes.
func TestGitCheckoutTimeout(t *testing.T) {
	repo := gitRepo(t)
	c := startAgent(t)
	dir := t.TempDir()
	base, _ := gitServer(t, filepath.Dir(repo.bare), "", "", time.Minute)
	began := time.Now()
	first := make(chan error, 1)
	go func() {
		_, err := checkout(t, c, api.GitCheckoutRequest{RepoURL: base + "/repo.git", TargetDir: dir + "/slow", TimeoutMs: 1000})
		first <- err
	}()
	// Meanwhile, a second clone into the same directory is refused.
	time.Sleep(300 * time.Millisecond)
	_, err := checkout(t, c, api.GitCheckoutRequest{RepoURL: base + "/repo.git", TargetDir: dir + "/slow", TimeoutMs: 1000})
	wantCode(t, "a second clone into the directory", err, api.CodeFileExists)
	wantCode(t, "slow clone", <-first, api.CodeTimeout)
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("the timeout took %v", took)
	}
	if _, err := os.Stat(dir + "/slow"); err == nil {
		t.Error("the timed-out clone left its directory")
	}
}

// Without targetDir, the clone goes to <working directory>/<repo name>:
// /workspace/<name> in a sandbox.
func TestGitCheckoutDefaultTarget(t *testing.T) {
	repo := gitRepo(t)
	workdir := t.TempDir()
	c := startAgent(t, func(cfg *agent.Config) { cfg.Workdir = workdir })
	run(t, c, cmd("cd /")) // the session's directory does not matter
	res, err := checkout(t, c, api.GitCheckoutRequest{RepoURL: "file://" + repo.bare + "/"})
	if err != nil || res.TargetDir != workdir+"/repo" || res.Commit != repo.mainHead {
		t.Fatalf("%+v %v", res, err)
	}
	if _, err := os.Stat(workdir + "/repo/b"); err != nil {
		t.Error(err)
	}
}
