// The JavaScript and TypeScript executor of the code interpreter: one Node
// process per code context, started by sandbox-agent as
//
//	node --expose-internals --disable-warning=ExperimentalWarning node_executor.js
//
// with fd 3 (requests, JSON lines, from the agent) and fd 4 (events, JSON
// lines, to the agent). stdout and stderr (fd 1, 2) are pipes the agent
// reads too, for what child processes write.
//
// Requests: {"init": {"cwd", "env"}} once, then {"code", "language"} per run.
// Events: ready; then per run stdout/stderr {text}, result {text, json...},
// error {name, value, traceback}, and complete {executionCount}.
//
// Code runs in this process's own realm (vm.runInThisContext), so top-level
// declarations persist from run to run as they do between <script>s. Top-
// level let, const and class become var first, so that a run may declare
// them again (as in a notebook). Top-level await is rewritten by Node's own
// REPL transform (internal/repl/await), which is why the flag
// --expose-internals is needed; a run's value that is a promise is awaited.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const vm = require('node:vm');
const { Writable } = require('node:stream');
const { createRequire, stripTypeScriptTypes } = require('node:module');

let processTopLevelAwait = null;
let acorn = null;
try {
  ({ processTopLevelAwait } = require('internal/repl/await'));
  acorn = require('internal/deps/acorn/acorn/dist/acorn');
} catch {
  // Without internals: no top-level await, no redeclarations.
}

const IN_FD = 3;
const OUT_FD = 4;

function send(ev) {
  const buf = Buffer.from(JSON.stringify(ev) + '\n');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(OUT_FD, buf, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') {
        process.exit(70); // the agent is gone
      }
    }
  }
}

// One output event holds at most EVENT_TEXT UTF-16 units (the agent bounds
// an event line); a cut never splits a surrogate pair.
const EVENT_TEXT = 1 << 20;

function output(type) {
  return new Writable({
    write(chunk, encoding, cb) {
      const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
      for (let i = 0; i < text.length;) {
        let end = Math.min(i + EVENT_TEXT, text.length);
        if (end < text.length && end > i + 1 && (text.charCodeAt(end) & 0xfc00) === 0xdc00) {
          end--;
        }
        send({ type, text: text.slice(i, end) });
        i = end;
      }
      cb();
    },
  });
}

const outStream = output('stdout');
const errStream = output('stderr');
globalThis.console = new console.Console({ stdout: outStream, stderr: errStream });
for (const [name, stream] of [['stdout', outStream], ['stderr', errStream]]) {
  process[name].write = (chunk, encoding, cb) => {
    stream.write(typeof chunk === 'string' ? chunk : Buffer.from(chunk), encoding, cb);
    return true;
  };
}

let executionCount = 0;
let cancel = null; // rejects the awaited value of the running run

process.on('SIGINT', () => {
  if (cancel) {
    cancel(interruptedError());
  }
});

function interruptedError() {
  const e = new Error('Script execution was interrupted');
  e.name = 'Interrupted';
  return e;
}

function setup(init) {
  const cwd = init.cwd || process.cwd();
  try {
    process.chdir(cwd);
  } catch (e) {
    send({ type: 'error', name: 'Error', value: `cannot enter ${cwd}: ${e.message}`, traceback: [] });
  }
  for (const [k, v] of Object.entries(init.env || {})) {
    process.env[k] = v;
  }
  const file = path.join(process.cwd(), '[code context]');
  globalThis.require = createRequire(file);
  globalThis.module = { exports: {}, require: globalThis.require, id: '.', filename: file };
  globalThis.exports = globalThis.module.exports;
  globalThis.__filename = file;
  globalThis.__dirname = process.cwd();
}

// redeclarable makes top-level let/const/class declarations var ones
// (positions kept where it can), so a run may declare them again.
function redeclarable(code) {
  if (!acorn) {
    return code;
  }
  let ast;
  try {
    ast = acorn.parse(code, { ecmaVersion: 'latest', sourceType: 'script', allowAwaitOutsideFunction: true, allowHashBang: true });
  } catch {
    return code; // the run reports the syntax error
  }
  const edits = [];
  for (const node of ast.body) {
    if (node.type === 'VariableDeclaration' && node.kind !== 'var') {
      edits.push([node.start, node.start + node.kind.length, 'var'.padEnd(node.kind.length)]);
    } else if (node.type === 'ClassDeclaration' && node.id) {
      edits.push([node.start, node.start, `var ${node.id.name} = `], [node.end, node.end, ';']);
    }
  }
  for (let i = edits.length - 1; i >= 0; i--) {
    const [s, e, text] = edits[i];
    code = code.slice(0, s) + text + code.slice(e);
  }
  return code;
}

// staticImports rewrites a cell's top-level static imports (which a script
// cannot hold) as the dynamic imports they amount to, with top-level await:
// `import fs, { join as j } from 'm'` becomes `var __sbx_import_0 = await
// import('m'); var fs = __sbx_import_0.default; var { join: j } =
// __sbx_import_0;`. It returns null when there are none, or when the code
// does not parse as a module (the run then reports its own error).
function staticImports(code) {
  if (!acorn || !/\bimport\b/.test(code)) {
    return null;
  }
  let ast;
  try {
    ast = acorn.parse(code, { ecmaVersion: 'latest', sourceType: 'module', allowAwaitOutsideFunction: true, allowHashBang: true });
  } catch {
    return null;
  }
  const edits = [];
  for (const node of ast.body) {
    if (node.type !== 'ImportDeclaration') {
      continue;
    }
    const src = JSON.stringify(node.source.value);
    const tmp = `__sbx_import_${importCount++}`;
    // Import attributes (with { type: 'json' }) go along.
    const attrs = (node.attributes || []).map((a) => `${JSON.stringify(a.key.type === 'Literal' ? a.key.value : a.key.name)}: ${JSON.stringify(a.value.value)}`);
    const opts = attrs.length ? `, { with: { ${attrs.join(', ')} } }` : '';
    let text = `var ${tmp} = await import(${src}${opts});`;
    const named = [];
    for (const s of node.specifiers) {
      if (s.type === 'ImportNamespaceSpecifier') {
        text += ` var ${s.local.name} = ${tmp};`;
      } else if (s.type === 'ImportDefaultSpecifier') {
        text += ` var ${s.local.name} = ${tmp}.default;`;
      } else {
        const name = s.imported.type === 'Literal' ? JSON.stringify(s.imported.value) : s.imported.name;
        named.push(name === s.local.name ? name : `${name}: ${s.local.name}`);
      }
    }
    if (named.length) {
      text += ` var { ${named.join(', ')} } = ${tmp};`;
    }
    // As many lines as the declaration had: later lines keep their numbers.
    text += '\n'.repeat((code.slice(node.start, node.end).match(/\n/g) || []).length);
    edits.push([node.start, node.end, text]);
  }
  if (!edits.length) {
    return null;
  }
  for (let i = edits.length - 1; i >= 0; i--) {
    const [s, e, text] = edits[i];
    code = code.slice(0, s) + text + code.slice(e);
  }
  return code;
}

let importCount = 0;

// Dynamic import() resolves as it would in the main script.
const scriptOptions = (filename) => {
  const opts = { filename };
  if (vm.constants && vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER) {
    opts.importModuleDynamically = vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  }
  return opts;
};

function isThenable(v) {
  return v !== null && (typeof v === 'object' || typeof v === 'function') && typeof v.then === 'function';
}

function errorEvent(e) {
  if (e !== null && typeof e === 'object' && 'message' in e) {
    const stack = typeof e.stack === 'string' ? e.stack : `${e.name}: ${e.message}`;
    return { type: 'error', name: String(e.name || 'Error'), value: String(e.message), traceback: stack.split('\n') };
  }
  return { type: 'error', name: 'Error', value: `Uncaught ${util.inspect(e)}`, traceback: [] };
}

// maxStringResult bounds the text of a string result, in characters.
const maxStringResult = 1 << 20;

function resultEvent(value) {
  // A non-empty string is its own text, as a notebook shows it, not
  // quoted (up to maxStringResult; util.inspect cuts other values).
  let text;
  if (typeof value === 'string' && value !== '') {
    text = value.length > maxStringResult ? `${value.slice(0, maxStringResult)}... ${value.length - maxStringResult} more characters` : value;
  } else {
    text = util.inspect(value, { depth: 4, maxArrayLength: 200 });
  }
  const ev = { type: 'result', isMainResult: true, text };
  if (value !== null && typeof value === 'object') {
    try {
      const j = JSON.stringify(value);
      if (j !== undefined) {
        ev.json = JSON.parse(j);
      }
    } catch {
      // not JSON: text only
    }
  }
  return ev;
}

function awaitCancellable(p) {
  return new Promise((resolve, reject) => {
    cancel = reject;
    Promise.resolve(p).then(resolve, reject);
  });
}

async function run(req) {
  executionCount++;
  const filename = `<cell ${executionCount}>`;
  try {
    let code = req.code;
    if (req.language === 'typescript') {
      try {
        code = stripTypeScriptTypes(code, { mode: 'strip' });
      } catch (e) {
        if (e.code !== 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
          throw e;
        }
        code = stripTypeScriptTypes(code, { mode: 'transform' });
      }
    }
    code = redeclarable(staticImports(code) ?? code);
    const wrapped = processTopLevelAwait ? processTopLevelAwait(code) : null;
    let value;
    if (wrapped === null) {
      value = new vm.Script(code, scriptOptions(filename)).runInThisContext({ breakOnSigint: true, displayErrors: false });
      if (isThenable(value)) {
        value = await awaitCancellable(value);
      }
    } else {
      const ret = await awaitCancellable(new vm.Script(wrapped, scriptOptions(filename)).runInThisContext({ breakOnSigint: true, displayErrors: false }));
      value = ret ? ret.value : undefined;
      if (isThenable(value)) {
        value = await awaitCancellable(value);
      }
    }
    if (value !== undefined) {
      send(resultEvent(value));
    }
  } catch (e) {
    if (e && e.code === 'ERR_SCRIPT_EXECUTION_INTERRUPTED') {
      send(errorEvent(interruptedError()));
    } else if (e instanceof SyntaxError && /import statement outside a module/.test(e.message)) {
      e.message += ' (in a code context, use require() or await import(); static imports are rewritten to those only where node exposes its parser)';
      send(errorEvent(e));
    } else if (!processTopLevelAwait && e instanceof SyntaxError && /\bawait\b/.test(e.message)) {
      e.message += ' (top-level await needs Node\'s internal/repl/await, which this node does not expose; wrap the code in an async function)';
      send(errorEvent(e));
    } else {
      send(errorEvent(e));
    }
  } finally {
    cancel = null;
  }
  send({ type: 'complete', executionCount });
}

// Errors that escape a run (a rejected promise nobody awaited, a throw in a
// timer) go to stderr instead of ending the context.
process.on('uncaughtException', (e) => {
  errStream.write(`Uncaught ${util.inspect(e)}\n`);
});
process.on('unhandledRejection', (e) => {
  errStream.write(`Unhandled promise rejection: ${util.inspect(e)}\n`);
});

async function main() {
  // A libuv pipe, not fs.createReadStream: a blocking read in the thread
  // pool would hold process.exit() up until the agent closes the pipe.
  const input = new (require('node:net').Socket)({ fd: IN_FD, readable: true, writable: false });
  const lines = require('node:readline').createInterface({ input, crlfDelay: Infinity });
  send({ type: 'ready', value: typeof stripTypeScriptTypes === 'function' ? 'typescript' : '' });
  for await (const line of lines) {
    let req;
    try {
      req = JSON.parse(line);
    } catch {
      continue;
    }
    if (req.init) {
      setup(req.init);
      send({ type: 'initialized' });
      continue;
    }
    await run(req);
  }
  process.exit(0);
}

main();
