package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/sandbox"
)

// runCode runs code and fails the test on a call error (not on a run
// error: that is the result's).
func runCode(t *testing.T, sb *sandbox.Sandbox, code string, opts *sandbox.RunCodeOptions) *sandbox.ExecutionResult {
	t.Helper()
	res, err := sb.RunCode(ctxT(t, 2*time.Minute), code, opts)
	if err != nil {
		t.Fatalf("run %q: %v", code, err)
	}
	return res
}

// mustSucceed fails the test unless the run succeeded.
func mustSucceed(t *testing.T, res *sandbox.ExecutionResult) {
	t.Helper()
	if !res.Success || res.Error != nil {
		t.Fatalf("run %q failed: %+v", res.Code, res.Error)
	}
}

func newContext(t *testing.T, sb *sandbox.Sandbox, lang string) string {
	t.Helper()
	c, err := sb.CreateCodeContext(ctxT(t, 2*time.Minute), &sandbox.CodeContextOptions{Language: lang})
	if err != nil {
		t.Fatalf("create %s context: %v", lang, err)
	}
	if c.Language != lang || c.Cwd != "/workspace" || c.ID == "" {
		t.Errorf("context: %+v", c)
	}
	return c.ID
}

func TestCodePython(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-py")
	py := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}

	t.Run("state persists", func(t *testing.T) {
		mustSucceed(t, runCode(t, sb, "import math\nradius = 5", py))
		res := runCode(t, sb, "math.pi * radius ** 2", py)
		mustSucceed(t, res)
		if res.Text() != "78.53981633974483" {
			t.Errorf("area: %q %+v", res.Text(), res.Results)
		}
	})
	t.Run("print and last expression", func(t *testing.T) {
		res := runCode(t, sb, "print('hello')\nprint('world', file=__import__('sys').stderr)\n40 + 2", py)
		mustSucceed(t, res)
		if got := strings.Join(res.Logs.Stdout, ""); got != "hello\n" {
			t.Errorf("stdout %q", got)
		}
		if got := strings.Join(res.Logs.Stderr, ""); got != "world\n" {
			t.Errorf("stderr %q", got)
		}
		if res.Text() != "42" || len(res.Results) != 1 || !res.Results[0].IsMainResult {
			t.Errorf("results %+v", res.Results)
		}
	})
	t.Run("child output belongs to its run", func(t *testing.T) {
		// A child writes to the executor's stdout pipe, not through
		// Python's: its output, written before the run ends, is the run's.
		for i := range 3 {
			res := runCode(t, sb, fmt.Sprintf("import os\nos.system('echo child-%d')", i), py)
			if got := strings.Join(res.Logs.Stdout, ""); got != fmt.Sprintf("child-%d\n", i) {
				t.Errorf("run %d: stdout %q", i, got)
			}
		}
	})
	t.Run("matplotlib png", func(t *testing.T) {
		res := runCode(t, sb, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')\nplt.show()", py)
		mustSucceed(t, res)
		pngs := res.PNGs()
		if len(pngs) != 1 {
			t.Fatalf("want 1 png, got %d: %+v", len(pngs), res.Results)
		}
		if !bytes.HasPrefix(pngs[0], []byte("\x89PNG\r\n\x1a\n")) {
			t.Fatalf("not a PNG signature: %q", pngs[0][:8])
		}
		img, err := png.Decode(bytes.NewReader(pngs[0]))
		if err != nil {
			t.Fatalf("decode png: %v", err)
		}
		if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
			t.Errorf("tiny image %v", b)
		}
		// A figure left open at the end of a run is shown too.
		res = runCode(t, sb, "plt.figure(); plt.bar(['a', 'b'], [3, 5]); None", py)
		if len(res.PNGs()) != 1 {
			t.Errorf("open figure: %+v", res.Results)
		}
		// A figure as the last expression is shown once.
		res = runCode(t, sb, "fig, ax = plt.subplots()\nax.plot([3, 1])\nfig", py)
		if len(res.PNGs()) != 1 || !res.Results[0].IsMainResult {
			t.Errorf("figure value: %+v", res.Results)
		}
	})
	t.Run("dataframe html", func(t *testing.T) {
		res := runCode(t, sb, "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})", py)
		mustSucceed(t, res)
		if len(res.Results) != 1 || !strings.Contains(res.Results[0].HTML, "<table") || !strings.Contains(res.Results[0].Text, "a  b") {
			t.Errorf("dataframe: %+v", res.Results)
		}
	})
	t.Run("display formats", func(t *testing.T) {
		res := runCode(t, sb, `from IPython.display import display, HTML, Markdown, Latex, SVG, JSON
display(HTML('<b>bold</b>'))
display(Markdown('# title'))
display(Latex(r'$x^2$'))
display(JSON({'k': [1, 2]}))
class Rich:
    def _repr_html_(self): return '<i>rich</i>'
    def _repr_svg_(self): return '<svg xmlns="http://www.w3.org/2000/svg"></svg>'
Rich()`, py)
		mustSucceed(t, res)
		if len(res.Results) != 5 {
			t.Fatalf("want 5 results: %+v", res.Results)
		}
		r := res.Results
		if r[0].HTML != "<b>bold</b>" || r[1].Markdown != "# title" || r[2].Latex != "$x^2$" ||
			string(r[3].JSON) != `{"k":[1,2]}` || r[4].HTML != "<i>rich</i>" || !strings.HasPrefix(r[4].SVG, "<svg") || !r[4].IsMainResult {
			t.Errorf("formats: %+v", r)
		}
	})
	t.Run("error", func(t *testing.T) {
		res := runCode(t, sb, "x = 1\n1 / 0", py)
		if res.Success || res.Error == nil {
			t.Fatalf("want an error: %+v", res)
		}
		if res.Error.Name != "ZeroDivisionError" || res.Error.Value != "division by zero" || len(res.Error.Traceback) == 0 {
			t.Errorf("error: %+v", res.Error)
		}
		res = runCode(t, sb, "def f(:\n  pass", py)
		if res.Error == nil || res.Error.Name != "SyntaxError" {
			t.Errorf("syntax error: %+v", res.Error)
		}
	})
	t.Run("default context", func(t *testing.T) {
		mustSucceed(t, runCode(t, sb, "default_var = 7", nil))
		res := runCode(t, sb, "default_var * 6", &sandbox.RunCodeOptions{Language: api.LanguagePython})
		if res.Text() != "42" || res.ContextID == py.ContextID {
			t.Errorf("default context: %+v", res)
		}
		if res := runCode(t, sb, "default_var", py); res.Error == nil || res.Error.Name != "NameError" {
			t.Errorf("the default context leaked into another: %+v", res)
		}
	})
	t.Run("env and cwd", func(t *testing.T) {
		c, err := sb.CreateCodeContext(ctxT(t, time.Minute), &sandbox.CodeContextOptions{Cwd: "/tmp", EnvVars: map[string]string{"GREETING": "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		res := runCode(t, sb, "import os, subprocess\n(os.getcwd(), os.environ['GREETING'], subprocess.run('echo $GREETING', shell=True, capture_output=True, text=True).stdout)",
			&sandbox.RunCodeOptions{ContextID: c.ID})
		if res.Text() != "('/tmp', 'hi', 'hi\\n')" {
			t.Errorf("env and cwd: %q %+v", res.Text(), res.Error)
		}
	})
}

func TestCodeJavaScript(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-js")
	js := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguageJavaScript)}

	mustSucceed(t, runCode(t, sb, "let n = 40; const add = (a, b) => a + b; function twice(x) { return 2 * x }", js))
	if res := runCode(t, sb, "add(n, 2)", js); res.Text() != "42" {
		t.Errorf("state: %+v", res)
	}
	// Declaring again, as re-running a cell does, works.
	mustSucceed(t, runCode(t, sb, "let n = 1; class K {}; class K2 extends K {}", js))
	if res := runCode(t, sb, "twice(n)", js); res.Text() != "2" {
		t.Errorf("redeclared: %+v %+v", res.Results, res.Error)
	}
	res := runCode(t, sb, "const v = await new Promise(r => setTimeout(() => r(21), 50));\nconsole.log('waited');\nv * 2", js)
	mustSucceed(t, res)
	if res.Text() != "42" || strings.Join(res.Logs.Stdout, "") != "waited\n" {
		t.Errorf("top-level await: %+v %+v", res.Results, res.Logs)
	}
	if res := runCode(t, sb, "v + 1", js); res.Text() != "22" {
		t.Errorf("await declaration persists: %+v %+v", res.Results, res.Error)
	}
	if res := runCode(t, sb, "Promise.resolve({a: 1, b: [true, 'x']})", js); res.Text() != "{ a: 1, b: [ true, 'x' ] }" || string(res.Results[0].JSON) != `{"a":1,"b":[true,"x"]}` {
		t.Errorf("promise of an object: %+v", res.Results)
	}
	res = runCode(t, sb, "undefinedThing + 1", js)
	if res.Success || res.Error == nil || res.Error.Name != "ReferenceError" || res.Error.Value != "undefinedThing is not defined" {
		t.Errorf("ReferenceError: %+v", res.Error)
	}
	res = runCode(t, sb, "await Promise.reject(new TypeError('nope'))", js)
	if res.Error == nil || res.Error.Name != "TypeError" || res.Error.Value != "nope" {
		t.Errorf("rejected promise: %+v", res.Error)
	}
	// A string result is its text, unquoted.
	if res := runCode(t, sb, "const path = await import('node:path'); path.basename('/a/b.txt')", js); res.Text() != "b.txt" {
		t.Errorf("dynamic import: %+v %+v", res.Results, res.Error)
	}
	res = runCode(t, sb, "const fs = require('fs'); fs.writeFileSync('/tmp/from-js', 'ok'); process.cwd()", js)
	if res.Text() != "/workspace" {
		t.Errorf("require and cwd: %+v %+v", res.Results, res.Error)
	}
	// Static imports, as a module would have them, and again in a later
	// cell.
	for range 2 {
		res = runCode(t, sb, "import os from 'node:os';\nimport path, { join as j } from 'path';\nimport * as fs2 from 'fs';\nimport 'node:util';\n[j('a', 'b'), typeof os.cpus, typeof path.basename, typeof fs2.readFileSync].join(' ')", js)
		if res.Text() != "a/b function function function" {
			t.Errorf("static imports: %+v %+v", res.Results, res.Error)
		}
	}
	// With import attributes; a multi-line import keeps the lines after
	// it where they were (the error names line 5).
	mustExec(t, sb, `echo '{"a": 7}' > /workspace/d.json`)
	if res := runCode(t, sb, "import d from './d.json' with { type: 'json' };\nd.a * 6", js); res.Text() != "42" {
		t.Errorf("import with attributes: %+v %+v", res.Results, res.Error)
	}
	res = runCode(t, sb, "import {\n  join,\n  basename,\n} from 'path';\nthrow new Error('here')", js)
	if res.Error == nil || !strings.Contains(strings.Join(res.Error.Traceback, "\n"), ":5") {
		t.Errorf("line numbers after a multi-line import: %+v", res.Error)
	}
	if res := runCode(t, sb, "''", js); res.Text() != "''" {
		t.Errorf("empty string result: %+v", res.Results)
	}
}

func TestCodeTypeScript(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-ts")
	ts := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguageTypeScript)}
	res := runCode(t, sb, "interface P { x: number; y: number }\nconst p: P = { x: 3, y: 4 };\nfunction norm(q: P): number { return Math.hypot(q.x, q.y) }\nnorm(p)", ts)
	mustSucceed(t, res)
	if res.Text() != "5" {
		t.Errorf("typescript: %+v", res.Results)
	}
	res = runCode(t, sb, "enum Color { Red, Green }\nColor.Green as number", ts)
	if res.Text() != "1" {
		t.Errorf("enum (transformed): %+v %+v", res.Results, res.Error)
	}
	res = runCode(t, sb, "const broken: = 3;", ts)
	if res.Success || res.Error == nil || res.Error.Name != "SyntaxError" {
		t.Errorf("syntax error: %+v", res.Error)
	}
	// Without a context: the default TypeScript context.
	res = runCode(t, sb, "const s: string = 'typed'; s.length", &sandbox.RunCodeOptions{Language: api.LanguageTypeScript})
	if res.Text() != "5" {
		t.Errorf("default typescript context: %+v %+v", res.Results, res.Error)
	}
}

func TestCodeSharesFilesAcrossLanguages(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-files")
	mustSucceed(t, runCode(t, sb, "open('/workspace/shared.txt', 'w').write('from python')", nil))
	res := runCode(t, sb, "require('fs').readFileSync('/workspace/shared.txt', 'utf8')", &sandbox.RunCodeOptions{Language: api.LanguageJavaScript})
	if res.Text() != "from python" {
		t.Errorf("js read: %+v %+v", res.Results, res.Error)
	}
	// And back: a module JavaScript writes is importable from the context's
	// directory.
	mustSucceed(t, runCode(t, sb, "require('fs').writeFileSync('jsmade.py', 'VALUE = 42\\n')", &sandbox.RunCodeOptions{Language: api.LanguageJavaScript}))
	if res := runCode(t, sb, "import jsmade\njsmade.VALUE", nil); res.Text() != "42" {
		t.Errorf("python import: %+v %+v", res.Results, res.Error)
	}
}

func TestCodeRunsSerializedAndIsolated(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-serial")
	one := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}
	two := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}
	mustSucceed(t, runCode(t, sb, "counter = 0\nseen = []", one))

	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Read, wait, write: interleaved runs would lose increments.
			if _, err := sb.RunCode(ctxT(t, time.Minute), "import time\nc = counter\ntime.sleep(0.05)\ncounter = c + 1\nseen.append(counter)", one); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if res := runCode(t, sb, "seen", one); res.Text() != "[1, 2, 3, 4, 5]" {
		t.Errorf("serialized runs: %q", res.Text())
	}
	res := runCode(t, sb, "counter", two)
	if res.Error == nil || res.Error.Name != "NameError" {
		t.Errorf("contexts are not isolated: %+v", res)
	}
}

func TestCodeTimeoutAndCrash(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-timeout")
	py := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}
	mustSucceed(t, runCode(t, sb, "kept = 'still here'", py))

	began := time.Now()
	res := runCode(t, sb, "import time\nwhile True:\n    time.sleep(0.1)", &sandbox.RunCodeOptions{ContextID: py.ContextID, Timeout: 500 * time.Millisecond})
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("timeout took %s", took)
	}
	if res.Error == nil || res.Error.Name != "TimeoutError" || res.ContextReset {
		t.Errorf("timeout: %+v reset=%v", res.Error, res.ContextReset)
	}
	if res := runCode(t, sb, "kept", py); res.Text() != "'still here'" {
		t.Errorf("after a timeout: %+v %+v", res.Results, res.Error)
	}
	// A run that ignores the interrupt gets its context reset.
	res = runCode(t, sb, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)", &sandbox.RunCodeOptions{ContextID: py.ContextID, Timeout: 300 * time.Millisecond})
	if res.Error == nil || res.Error.Name != "TimeoutError" || !res.ContextReset {
		t.Errorf("uninterruptible: %+v reset=%v", res.Error, res.ContextReset)
	}
	if res := runCode(t, sb, "kept", py); res.Error == nil || res.Error.Name != "NameError" {
		t.Errorf("after a reset the state should be gone: %+v", res)
	}

	// Crashes: exit, segfault. Each gives a clear error; the next run works.
	for _, crash := range []string{"import os\nos._exit(1)", "import ctypes\nctypes.string_at(0)",
		"import os\nos.system('sleep 100 &')\nos._exit(2)"} {
		mustSucceed(t, runCode(t, sb, "x = 1", py))
		res := runCode(t, sb, crash, py)
		if res.Error == nil || res.Error.Name != "ExecutorExited" || !res.ContextReset {
			t.Errorf("crash %q: %+v", crash, res.Error)
		} else if !strings.Contains(res.Error.Value, "context was reset") {
			t.Errorf("crash message: %q", res.Error.Value)
		}
		if res := runCode(t, sb, "1 + 1", py); res.Text() != "2" {
			t.Errorf("after crash %q: %+v", crash, res)
		}
	}

	// JavaScript: a synchronous endless loop is interrupted.
	js := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguageJavaScript)}
	mustSucceed(t, runCode(t, sb, "var keptJS = 5", js))
	res = runCode(t, sb, "while (true) {}", &sandbox.RunCodeOptions{ContextID: js.ContextID, Timeout: 300 * time.Millisecond})
	if res.Error == nil || res.Error.Name != "TimeoutError" {
		t.Errorf("js timeout: %+v", res.Error)
	}
	if res := runCode(t, sb, "keptJS", js); res.Text() != "5" {
		t.Errorf("js after timeout: %+v %+v", res.Results, res.Error)
	}
	res = runCode(t, sb, "process.exit(3)", js)
	if res.Error == nil || res.Error.Name != "ExecutorExited" || !strings.Contains(res.Error.Value, "code 3") {
		t.Errorf("js exit: %+v", res.Error)
	}
	if res := runCode(t, sb, "1 + 1", js); res.Text() != "2" {
		t.Errorf("js after exit: %+v", res)
	}
	// A background child that holds the executor's pipes does not hide
	// its exit.
	began = time.Now()
	res = runCode(t, sb, "require('child_process').exec('sleep 100 &'); await new Promise(r => setTimeout(r, 200)); process.exit(4)", js)
	if res.Error == nil || res.Error.Name != "ExecutorExited" || !strings.Contains(res.Error.Value, "code 4") || time.Since(began) > 20*time.Second {
		t.Errorf("js exit with a child: %+v after %s", res.Error, time.Since(began))
	}
	if res := runCode(t, sb, "1 + 2", js); res.Text() != "3" {
		t.Errorf("js after exit: %+v", res)
	}
}

func TestCodeStreamIsLive(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-stream")
	ctx := ctxT(t, 2*time.Minute)
	// Four writes 0.5 s apart: 1.5 s from the first to the last. Output
	// buffered to the end would arrive at once; the bound leaves half of
	// that for a loaded machine.
	for _, c := range []struct{ lang, code, want string }{
		{api.LanguagePython, "import time\nfor i in range(4):\n    print(i)\n    time.sleep(0.5)\n'done'", "0\n1\n2\n3\n"},
		// A partial line (no newline, no flush) streams too.
		{api.LanguagePython, "import time\nfor i in range(4):\n    print(i, end='')\n    time.sleep(0.5)\n'done'", "0123"},
		{api.LanguageJavaScript, "for (let i = 0; i < 4; i++) { console.log(i); await new Promise(r => setTimeout(r, 500)) }\n'done'", "0\n1\n2\n3\n"},
	} {
		st, err := sb.RunCodeStream(ctx, c.code, &sandbox.RunCodeOptions{Language: c.lang})
		if err != nil {
			t.Fatal(err)
		}
		var stamps []time.Time
		var out []string
		var last sandbox.CodeEvent
		for ev, err := range st.Events() {
			if err != nil {
				t.Fatal(err)
			}
			if ev.Type == api.EventStdout {
				stamps = append(stamps, time.Now())
				out = append(out, ev.Text)
			}
			last = ev
		}
		if strings.Join(out, "") != c.want {
			t.Errorf("%s: output %q", c.lang, out)
		}
		if len(stamps) < 2 {
			t.Errorf("%s: want several output events, got %q", c.lang, out)
		} else if spread := stamps[len(stamps)-1].Sub(stamps[0]); spread < 750*time.Millisecond {
			t.Errorf("%s: events not live: the output arrived within %s", c.lang, spread)
		}
		if last.Type != api.EventComplete || last.ContextID != "default-"+c.lang {
			t.Errorf("%s: last event %+v", c.lang, last)
		}
	}
	// Callbacks see the events as they come.
	var got []string
	res, err := sb.RunCode(ctx, "print('a')\n1/0", &sandbox.RunCodeOptions{
		OnStdout: func(s string) { got = append(got, "out:"+s) },
		OnError:  func(e api.ExecutionError) { got = append(got, "err:"+e.Name) },
	})
	if err != nil || res.Error == nil || fmt.Sprint(got) != "[out:a\n err:ZeroDivisionError]" {
		t.Errorf("callbacks: %v %v %+v", got, err, res)
	}
}

func TestCodeContextLifecycle(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-contexts")
	ctx := ctxT(t, 3*time.Minute)

	// Ten at once.
	ids := make([]string, 10)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lang := api.LanguagePython
			if i%3 == 2 {
				lang = api.LanguageJavaScript
			}
			c, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: lang})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = c.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for i, id := range ids {
		code := fmt.Sprintf("mine = %d", i)
		if i%3 == 2 {
			code = fmt.Sprintf("var mine = %d", i)
		}
		mustSucceed(t, runCode(t, sb, code, &sandbox.RunCodeOptions{ContextID: id}))
	}
	for i, id := range ids {
		if res := runCode(t, sb, "mine", &sandbox.RunCodeOptions{ContextID: id}); res.Text() != strconv.Itoa(i) {
			t.Errorf("context %d: %q", i, res.Text())
		}
	}
	list, err := sb.ListCodeContexts(ctx)
	if err != nil || len(list) != 10 {
		t.Fatalf("list: %d %v", len(list), err)
	}

	// Deleting a context ends its process (and what its code started).
	victim := ids[0]
	res := runCode(t, sb, "import os, subprocess\nsubprocess.Popen(['sleep', '1000'])\nos.getpid()", &sandbox.RunCodeOptions{ContextID: victim})
	pid := res.Text()
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("pid %q %+v", pid, res.Error)
	}
	if out := mustExec(t, sb, "ps -o pid= -p "+pid+"; pgrep -x sleep | wc -l").Stdout; !strings.Contains(out, pid) || !strings.HasSuffix(out, "1\n") {
		t.Fatalf("before delete: %q", out)
	}
	if err := sb.DeleteCodeContext(ctx, victim); err != nil {
		t.Fatal(err)
	}
	// Killed when the call returns; the killed child is reaped a moment
	// later (a zombie still shows in ps).
	for deadline := time.Now().Add(10 * time.Second); ; {
		out := mustExec(t, sb, "ps -o pid=,stat= -p "+pid+"; ps -eo stat=,comm= | grep -v '^Z' | grep -cw sleep").Stdout
		if out == "0\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("after delete, the executor or its child lives: %q", out)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := sb.RunCode(ctx, "1", &sandbox.RunCodeOptions{ContextID: victim}); !errors.Is(err, sandbox.ErrContextNotFound) {
		t.Errorf("run in a deleted context: %v", err)
	}
	if err := sb.DeleteCodeContext(ctx, victim); !errors.Is(err, sandbox.ErrContextNotFound) {
		t.Errorf("delete again: %v", err)
	}

	// The cap.
	for range api.MaxCodeContexts - 9 {
		if _, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: api.LanguageJavaScript}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sb.CreateCodeContext(ctx, nil); !errors.Is(err, sandbox.ErrResourceExhausted) {
		t.Errorf("past the cap: %v", err)
	}
	if _, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: "cobol"}); !errors.Is(err, sandbox.ErrValidation) {
		t.Errorf("unknown language: %v", err)
	}
}

func TestCodeLanguageNotAvailable(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-missing")
	ctx := ctxT(t, 2*time.Minute)
	// Hide node from the sandbox's PATH: the agent looks it up there.
	mustExec(t, sb, "mv /usr/local/bin/node /usr/local/bin/node.hidden")
	_, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: api.LanguageJavaScript})
	var e *sandbox.Error
	if !errors.Is(err, sandbox.ErrLanguageNotAvailable) || !errors.As(err, &e) || e.HTTPStatus != 501 || !strings.Contains(e.Message, "node") {
		t.Errorf("missing node: %v", err)
	}
	mustExec(t, sb, "mv /usr/local/bin/node.hidden /usr/local/bin/node")
	if _, err := sb.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: api.LanguageJavaScript}); err != nil {
		t.Errorf("node back: %v", err)
	}

	// Python without IPython: the message names the module.
	const ipython = "/usr/lib/python3/dist-packages/IPython"
	mustExec(t, sb, "mv "+ipython+" "+ipython+".hidden")
	_, err = sb.CreateCodeContext(ctx, nil)
	if !errors.Is(err, sandbox.ErrLanguageNotAvailable) || !strings.Contains(err.Error(), "IPython") {
		t.Errorf("missing IPython: %v", err)
	}
	if _, err := sb.RunCode(ctx, "1", nil); !errors.Is(err, sandbox.ErrLanguageNotAvailable) {
		t.Errorf("run without IPython: %v", err)
	}
	mustExec(t, sb, "mv "+ipython+".hidden "+ipython)
	if res := runCode(t, sb, "6 * 7", nil); res.Text() != "42" {
		t.Errorf("IPython back: %+v", res)
	}
}

// TestCLIRunCode runs `sandbox run-code` as a user would: output, the last
// value, images saved to files, errors in the exit status.
func TestCLIRunCode(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	dir := t.TempDir()
	bin := buildCLI(t)
	cli := func(stdin string, args ...string) (string, string, int) {
		return runCLI(t, bin, d, dir, stdin, args...)
	}
	if out, stderr, code := cli("import math\nprint('hi')\nmath.pi * 5 ** 2", "run-code", "cli-code", "-"); code != 0 || out != "hi\n78.53981633974483\n" {
		t.Errorf("run-code: %q %q %d", out, stderr, code)
	}
	script := filepath.Join(dir, "plot.py")
	if err := os.WriteFile(script, []byte("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := cli("", "run-code", "cli-code", script); code != 0 || !strings.Contains(stderr, "result-1.png") {
		t.Errorf("plot: %q %d", stderr, code)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "result-1.png")); err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Errorf("saved image: %v", err)
	}
	ts := filepath.Join(dir, "x.ts")
	if err := os.WriteFile(ts, []byte("const n: number = 41;\nn + 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, stderr, code := cli("", "run-code", "cli-code", ts); code != 0 || out != "42\n" {
		t.Errorf("typescript by extension: %q %q %d", out, stderr, code)
	}
	if _, stderr, code := cli("1/0", "run-code", "cli-code", "-"); code != 1 || !strings.Contains(stderr, "ZeroDivisionError") {
		t.Errorf("error: %q %d", stderr, code)
	}
}

// TestCodeZygoteDies kills the Python zygote (the process that forks one
// executor per context): contexts it made keep working and keep their
// state, a new context gets a new zygote, and an executor's crash is still
// seen without the zygote's report.
func TestCodeZygoteDies(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-zygote")
	py := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}
	res := runCode(t, sb, "import os\nkept = 41\nos.getppid()", py)
	zygote := res.Text()
	if _, err := strconv.Atoi(zygote); err != nil {
		t.Fatalf("zygote pid %q %+v", zygote, res.Error)
	}
	mustExec(t, sb, "kill -KILL "+zygote)
	for deadline := time.Now().Add(10 * time.Second); mustExec(t, sb, "ps -o pid= -p "+zygote).Stdout != ""; {
		if time.Now().After(deadline) {
			t.Fatal("the zygote lives on")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if res := runCode(t, sb, "kept + 1", py); res.Text() != "42" || res.ContextReset {
		t.Errorf("a context after its zygote died: %+v %+v reset=%v", res.Results, res.Error, res.ContextReset)
	}
	other := &sandbox.RunCodeOptions{ContextID: newContext(t, sb, api.LanguagePython)}
	if res := runCode(t, sb, "import os\nos.getppid()", other); res.Text() == zygote || res.Error != nil {
		t.Errorf("a new context: %+v %+v", res.Results, res.Error)
	}
	began := time.Now()
	res = runCode(t, sb, "import os\nos._exit(3)", py)
	if res.Error == nil || res.Error.Name != "ExecutorExited" || !res.ContextReset || time.Since(began) > 30*time.Second {
		t.Errorf("crash without the zygote: %+v after %s", res.Error, time.Since(began))
	}
	if res := runCode(t, sb, "1 + 1", py); res.Text() != "2" {
		t.Errorf("after the crash: %+v", res)
	}
}

// TestCodeBigOutput: a write bigger than an event is split into events of
// at most 1 MiB, nothing lost, in both languages.
func TestCodeBigOutput(t *testing.T) {
	t.Parallel()
	d := StartDaemon(t)
	sb := d.Client.Get("code-big")
	for _, c := range []struct{ lang, code, want string }{
		{api.LanguagePython, "print('x' * 3_000_000)", strings.Repeat("x", 3_000_000) + "\n"},
		{api.LanguageJavaScript, "process.stdout.write('é' + '😀'.repeat(1_500_000))", "é" + strings.Repeat("😀", 1_500_000)},
	} {
		res := runCode(t, sb, c.code, &sandbox.RunCodeOptions{Language: c.lang})
		mustSucceed(t, res)
		if got := strings.Join(res.Logs.Stdout, ""); got != c.want {
			t.Errorf("%s: got %d bytes in %d events, want %d bytes", c.lang, len(got), len(res.Logs.Stdout), len(c.want))
		}
		if len(res.Logs.Stdout) < 3 {
			t.Errorf("%s: one write of 3 MB+ came in %d events", c.lang, len(res.Logs.Stdout))
		}
	}
}
