package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// This example runs a command in the sandbox "demo", creating the sandbox on
// first use, and then destroys it.
func Example() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	sb := c.Get("demo")
	res, err := sb.Exec(ctx, "python3 -c 'print(2+2)'", &sandbox.ExecOptions{
		Env:     map[string]string{"PYTHONUNBUFFERED": "1"},
		Timeout: 30 * time.Second,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("exit %d: %s", res.ExitCode, res.Stdout)
	if err := sb.Destroy(ctx); err != nil {
		log.Fatal(err)
	}
}

// This example creates a sandbox with limits and labels, then finds it again
// by label.
func ExampleClient_Create() {
	ctx := context.Background()
	c, err := sandbox.NewClient(sandbox.Options{URL: "http://127.0.0.1:8787", Token: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Create(ctx, "build-42", &api.CreateSandboxRequest{
		Resources: &api.Resources{CPUs: 2, MemoryMB: 2048},
		Labels:    map[string]string{"job": "build"},
	})
	if err != nil {
		log.Fatal(err)
	}
	list, err := c.List(ctx, sandbox.ListOptions{Labels: map[string]string{"job": "build"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range list {
		fmt.Println(s.ID, s.Status)
	}
}

// This example tells a missing sandbox apart from other failures, and reads
// the wire error code of any daemon error.
func ExampleError() {
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Get("demo").Info(context.Background())
	var e *sandbox.Error
	switch {
	case errors.Is(err, sandbox.ErrSandboxNotFound):
		fmt.Println("no such sandbox")
	case errors.As(err, &e):
		fmt.Println("daemon said", e.Code, e.HTTPStatus, e.Message)
	case err != nil:
		fmt.Println("could not reach the daemon:", err)
	}
}

// This example streams a command's output as it is produced, then gets its
// exit code.
func ExampleSandbox_ExecStream() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Get("demo").ExecStream(ctx, "for i in 1 2 3; do echo $i; sleep 1; done", nil)
	if err != nil {
		log.Fatal(err)
	}
	for ev, err := range st.Events() {
		if err != nil {
			log.Fatal(err)
		}
		switch ev.Type {
		case api.EventStdout:
			os.Stdout.Write(ev.Data)
		case api.EventComplete:
			fmt.Println("exit", ev.ExitCode)
		}
	}
}

// This example runs a command, printing its output live, and still gets the
// whole result.
func ExampleExecOptions_callbacks() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Get("demo").Exec(ctx, "pip install requests", &sandbox.ExecOptions{
		OnStdout: func(b []byte) { os.Stdout.Write(b) },
		OnStderr: func(b []byte) { os.Stderr.Write(b) },
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exit", res.ExitCode)
}

// This example starts a web server in the background, waits until it
// answers, and stops it.
func ExampleSandbox_StartProcess() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	sb := c.Get("demo")
	web, err := sb.StartProcess(ctx, "python3 -m http.server 8080", &sandbox.ProcessOptions{ID: "web"})
	if err != nil {
		log.Fatal(err)
	}
	err = web.WaitForPort(ctx, 8080, &sandbox.PortWaitOptions{Mode: "http", Timeout: 30 * time.Second})
	var e *sandbox.Error
	if errors.As(err, &e) {
		if code, ok := e.ExitCode(); ok {
			logs, _ := web.Logs(ctx)
			log.Fatalf("server exited with %d before it answered:\n%s", code, logs.Stderr)
		}
	}
	if err != nil {
		log.Fatal(err)
	}
	res, err := sb.Exec(ctx, "curl -s localhost:8080/ | head -1", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
	if _, err := web.Kill(ctx, ""); err != nil {
		log.Fatal(err)
	}
}

// This example keeps shell state in a session of its own.
func ExampleSandbox_CreateSession() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	sb := c.Get("demo")
	build, err := sb.CreateSession(ctx, api.CreateSessionRequest{ID: "build", Cwd: "/workspace/app"})
	if err != nil {
		log.Fatal(err)
	}
	defer sb.DeleteSession(ctx, build.ID())
	if err := build.SetEnvVars(ctx, map[string]*string{"GOFLAGS": new("-mod=vendor")}); err != nil {
		log.Fatal(err)
	}
	if _, err := build.Exec(ctx, "cd cmd/app", nil); err != nil {
		log.Fatal(err)
	}
	res, err := build.Exec(ctx, "pwd", nil) // /workspace/app/cmd/app
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(res.Stdout)
}

// This example writes a small file, reads it back, and uploads a large one
// as a stream.
func ExampleSandbox_WriteFile() {
	ctx := context.Background()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	sb := c.Get("demo")
	if _, err := sb.WriteFile(ctx, "hello.py", []byte("print('hi')\n"), nil); err != nil {
		log.Fatal(err)
	}
	f, err := sb.ReadFile(ctx, "hello.py", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(f.Path, ": ", f.Text())

	// Any size, in constant memory: the file is the request body.
	data, err := os.Open("dataset.parquet")
	if err != nil {
		log.Fatal(err)
	}
	defer data.Close()
	if _, err := sb.WriteFileStream(ctx, "/workspace/data/dataset.parquet", data, nil); err != nil {
		log.Fatal(err)
	}
}

// This example prints changes to Go files under /workspace until it is
// interrupted.
func ExampleSandbox_Watch() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := sandbox.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Get("demo").Watch(ctx, "/workspace", &sandbox.WatchOptions{
		Recursive: true,
		Include:   []string{"*.go"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for ev, err := range st.Events() {
		if err != nil {
			log.Fatal(err) // the daemon ended the watch
		}
		fmt.Println(ev.EventType, ev.Path)
	}
	// Interrupted: the loop ended without an error.
}
