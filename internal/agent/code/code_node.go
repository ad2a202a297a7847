package code

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/sandboxd/sandboxd/api"
)

// nodeStartTimeout bounds a Node executor's start.
const nodeStartTimeout = 30 * time.Second

// nodeExecutor returns a ready Node executor for a new context: the spare
// one if there is one (and starts the next spare), else a new one. No spare
// exists before JavaScript or TypeScript is first used in the sandbox.
func (ci *Interpreter) nodeExecutor(ctx context.Context, lang string) (e *executor, err error) {
	ci.nodeMu.Lock()
	e, ci.spare = ci.spare, nil
	ci.nodeMu.Unlock()
	if e != nil {
		select {
		case <-e.gone:
			e.kill()
			e = nil
		default:
		}
	}
	if e == nil {
		if e, err = ci.startNode(ctx, nodeFlags); err != nil {
			return nil, err
		}
	}
	if lang == api.LanguageTypeScript && !e.typescript {
		e.kill()
		return nil, notAvailable(lang, "TypeScript needs Node.js 22.13 or later (module.stripTypeScriptTypes); this sandbox's node lacks it")
	}
	ci.refillNode()
	return e, nil
}

// refillNode starts a spare Node executor in the background, unless one is
// there or on its way (so the spare is nil when it is ready). The goroutine
// ends once the executor is ready (or failed to start).
func (ci *Interpreter) refillNode() {
	ci.nodeMu.Lock()
	defer ci.nodeMu.Unlock()
	if ci.spare != nil || ci.refilling {
		return
	}
	ci.refilling = true
	go func() {
		e, err := ci.startNode(context.Background(), nodeFlags)
		if err != nil {
			ci.log.Warn("start a spare node executor", "err", err)
		}
		ci.nodeMu.Lock()
		defer ci.nodeMu.Unlock()
		ci.spare, ci.refilling = e, false // nil if it failed
	}()
}

// nodeFlags are the Node executor's flags. --expose-internals lets it use
// Node's own REPL transform for top-level await (internal/repl/await) and
// its parser (acorn) to make top-level let/const redeclarable; should a
// Node release move those, the executor still runs code, and a top-level
// await gives a SyntaxError saying what is missing (see
// TestNodeExecutorWithoutInternals).
var nodeFlags = []string{"--expose-internals", "--disable-warning=ExperimentalWarning"}

// startNode starts a Node executor with node's flags (in /, with the
// sandbox's environment; a context's own are set when it is claimed) and
// waits until it is ready.
func (ci *Interpreter) startNode(ctx context.Context, flags []string) (*executor, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		if node, err = exec.LookPath("nodejs"); err != nil {
			return nil, notAvailable(api.LanguageJavaScript, "JavaScript needs node (Node.js), which is not installed in this sandbox's image")
		}
	}
	script, err := ci.executorFile("node_executor.js")
	if err != nil {
		return nil, err
	}
	p, err := newExecutorPipes()
	if err != nil {
		return nil, err
	}
	args := append(append([]string{node}, flags...), script)
	pid, grp, codes, err := ci.spawn("ctx", args, nil, p.outW, p.errW, p.reqR, p.evW)
	p.closeChild()
	if err != nil {
		p.closeAll()
		return nil, err
	}
	e := newExecutor("node", pid, grp, p, codes)
	if err := e.waitReady(ctx, nodeStartTimeout); err != nil {
		e.kill()
		return nil, fmt.Errorf("start the JavaScript executor: %w", err)
	}
	return e, nil
}
