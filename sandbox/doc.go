// Package sandbox is the Go SDK for Sandboxd, a self-hosted daemon that gives
// programs isolated Linux sandboxes. It follows the Cloudflare Sandbox SDK:
// a [Client] hands out [Sandbox] handles by ID, and the daemon creates a
// sandbox the first time its ID is used.
//
//	c, err := sandbox.FromEnv()
//	if err != nil {
//		return err
//	}
//	res, err := c.Get("demo").Exec(ctx, "python3 -c 'print(2+2)'", nil)
//	if err != nil {
//		return err
//	}
//	fmt.Print(res.Stdout) // 4
//
// Output can be had live: [Sandbox.ExecStream] returns the command's events
// as they happen (range over [ExecStream.Events], or call [ExecStream.Wait]
// for the result), and [ExecOptions.OnStdout] and OnStderr make Exec call
// back with each chunk. [Sandbox.StartProcess] starts a background process
// and returns a [Process] handle to wait for its log lines, ports or exit,
// read or stream its output, and kill it. [Sandbox.CreateSession] and
// [Sandbox.GetSession] give a [Session], a shell of its own in the sandbox,
// offering the same methods for commands and processes.
//
// Files: [Sandbox.WriteFile] and [Sandbox.ReadFile] move small files in one
// JSON request each; [Sandbox.WriteFileStream] and [Sandbox.ReadFileStream]
// move files of any size as raw streams, in constant memory. ListFiles,
// Exists, Mkdir, DeleteFile, RenameFile and MoveFile manage the tree;
// [Sandbox.Watch] streams changes to it; [Sandbox.GitCheckout] clones a
// repository into it. Relative paths resolve against the session's current
// directory.
//
// Code interpreter: [Sandbox.RunCode] runs Python, JavaScript or TypeScript
// in a code context whose state carries from run to run (the language's
// default context, or one made with [Sandbox.CreateCodeContext]) and
// returns an [ExecutionResult]: output, rich results ([Result], with
// [Result.PNGBytes] for figures) and the error the code raised.
// [RunCodeOptions] callbacks, or [Sandbox.RunCodeStream], give the events
// live.
//
// Ports: [Sandbox.ExposePort] gives a service listening on a port inside
// the sandbox a preview URL (http://{port}-{id}-{token}.{domain}/) served by
// the daemon, with no network or published port needed in the sandbox;
// [Sandbox.GetExposedPorts] lists them and [Sandbox.UnexposePort] removes
// one.
//
// Every method takes a context first and talks to the daemon over the HTTP
// API described in docs/API.md; request and response bodies are the types of
// package [github.com/sandboxd/sandboxd/api].
//
// Errors reported by the daemon are returned as [*Error], wrapped with the
// operation that failed ("exec sandbox demo: ..."). Each wire error code has
// a sentinel, so callers test for one with [errors.Is]:
//
//	if errors.Is(err, sandbox.ErrSandboxNotFound) { ... }
//
// and reach the code, message and details with [errors.As].
//
// Dependencies: the SDK uses the standard library, the wire types of
// package api, and one library besides, github.com/coder/websocket, for
// [Sandbox.Terminal] (the standard library has no WebSocket client). It
// also compiles in two of the module's internal packages, which depend on
// the standard library only: internal/outevent, the codec of the output
// events that carry a command's output (shared with the agent, which
// encodes them), and internal/chunkio, which sends uploads in big pieces.
// A test (internal/policy) keeps it so.
package sandbox
