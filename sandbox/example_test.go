package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"log"
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
