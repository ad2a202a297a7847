"""The Python executor of the code interpreter, run by sandbox-agent.

    python3 -u python_executor.py zygote

The zygote imports IPython and the scientific stack once (numpy, pandas,
matplotlib with the Agg backend, when installed), builds an IPython
InteractiveShell, and then forks one child per code context: a fork costs
milliseconds where a cold start costs a second.

fd 3 of the zygote is a SOCK_SEQPACKET socket to the agent. Each message
from the agent is a JSON object {"cwd", "env"} carrying four file
descriptors: the child's requests (read), events (write), stdout and
stderr. The zygote answers {"pid": N} (or {"error": "..."}) and reports
each child's end as {"exited": N, "code": C} (C is 128+signal for a
signal). Its first message is {"ready": true}, or {"error": "...",
"missing": "module"} when IPython is not installed.

A child reads requests as JSON lines, {"code": "..."}, and writes events as
JSON lines: stdout/stderr {text}, result {text, html, png...}, error {name,
value, traceback}, complete {executionCount}. SIGINT interrupts a run with
KeyboardInterrupt (and does nothing between runs).
"""

import array
import base64
import json
import os
import signal
import socket
import sys
import threading

EVENTS = None  # the child's event stream (a binary file)
STREAMS = []  # the child's sys.stdout and sys.stderr
LOCK = threading.Lock()


def send(ev):
    for stream in STREAMS:
        if stream is not None and ev.get("type") != stream.name:
            stream.flush()
    write_event(ev)


def write_event(ev):
    data = (json.dumps(ev, ensure_ascii=False, default=str) + "\n").encode("utf-8", "surrogatepass")
    # SIGINT waits until the event is written whole.
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        with LOCK:
            EVENTS.write(data)
            EVENTS.flush()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


# A partial line (print(..., end='')) is sent after this long, so that
# progress output streams live.
PARTIAL_DELAY = 0.05
# Buffered text past this many characters is sent at once; one event holds
# at most EVENT_TEXT characters (the agent bounds an event line).
FLUSH_SIZE = 64 << 10
EVENT_TEXT = 1 << 20


class EventStream:
    """sys.stdout and sys.stderr of a child: line-buffered, each line (or
    what a flush finds) an event; a partial line is sent after
    PARTIAL_DELAY by a timer. Other events flush it first, so events keep
    the order of the writes."""

    def __init__(self, name, fd):
        self.name = name
        self.fd = fd
        self.encoding = "utf-8"
        self.errors = "replace"
        self.buf = []
        self.size = 0
        self.timer = None  # sends a partial line; guarded by lock
        self.lock = threading.RLock()

    def write(self, s):
        if isinstance(s, bytes):
            s = s.decode("utf-8", "replace")
        if not isinstance(s, str):
            raise TypeError("write() argument must be str, not %s" % type(s).__name__)
        if s:
            with self.lock:
                self.buf.append(s)
                self.size += len(s)
                if "\n" in s or "\r" in s or self.size >= FLUSH_SIZE:
                    self.flush()
                elif self.timer is None:
                    self.timer = threading.Timer(PARTIAL_DELAY, self._flush_partial)
                    self.timer.daemon = True
                    self.timer.start()
        return len(s)

    def _flush_partial(self):
        with self.lock:
            self.timer = None
            self.flush()

    def flush(self):
        with self.lock:
            if self.buf:
                text = "".join(self.buf)
                self.buf = []
                self.size = 0
                for i in range(0, len(text), EVENT_TEXT):
                    write_event({"type": self.name, "text": text[i : i + EVENT_TEXT]})

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def isatty(self):
        return False

    def fileno(self):
        return self.fd

    def readable(self):
        return False

    def writable(self):
        return True

    def seekable(self):
        return False

    @property
    def closed(self):
        return False


# MIME types of IPython's formatters, by the wire's field names.
FORMATS = {
    "text/plain": "text",
    "text/html": "html",
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/svg+xml": "svg",
    "text/latex": "latex",
    "text/markdown": "markdown",
    "application/json": "json",
    "application/javascript": "javascript",
}


def result_event(data, main=False):
    ev = {"type": "result"}
    for mime, value in data.items():
        key = FORMATS.get(mime)
        if key is None:
            continue
        if key in ("png", "jpeg") and isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif key in ("png", "jpeg") and isinstance(value, str):
            value = value.strip()
        elif key == "json" and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        ev[key] = value
    if main:
        ev["isMainResult"] = True
    return ev


def build_shell():
    """Imports IPython (required) and what else is there, and builds the
    shell every child starts from."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets import Type
    from traitlets.config import Config

    class Hook(DisplayHook):
        def write_output_prompt(self):
            pass

        def write_format_data(self, format_dict, md_dict=None):
            send(result_event(format_dict, main=True))

        def finish_displayhook(self):
            pass

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
            send(result_event(data))

        def clear_output(self, wait=False):
            pass

    class Shell(InteractiveShell):
        displayhook_class = Type(Hook)
        display_pub_class = Type(Publisher)

        def _showtraceback(self, etype, evalue, stb):
            name = getattr(etype, "__name__", str(etype))
            lines = []
            for entry in stb:
                lines.extend(str(entry).split("\n"))
            send({"type": "error", "name": name, "value": str(evalue), "traceback": lines})

        def showindentationerror(self):
            self.showsyntaxerror()

        def enable_gui(self, gui=None):
            pass

    cfg = Config()
    cfg.HistoryManager.enabled = False
    cfg.InteractiveShell.colors = "NoColor"
    cfg.InteractiveShell.xmode = "Context"
    shell = Shell.instance(config=cfg)
    shell.display_formatter.active_types = list(FORMATS)

    for mod in ("numpy", "pandas"):
        try:
            __import__(mod)
        except ImportError:
            pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401
        from matplotlib.figure import Figure

        def figure_png(fig):
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format="png", bbox_inches="tight")
            # Shown: not again at the end of the run.
            matplotlib.pyplot.close(fig)
            return buf.getvalue()

        shell.display_formatter.formatters["image/png"].for_type(Figure, figure_png)
    except ImportError:
        pass
    return shell


def flush_figures():
    """Shows every open matplotlib figure as a png result and closes it."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from IPython.display import display

    try:
        for num in plt.get_fignums():
            display(plt.figure(num))
    finally:
        plt.close("all")


def child(shell, fds, req):
    global EVENTS
    in_fd, ev_fd, out_fd, err_fd = fds
    # The protocol's pipes are not for the processes the code starts.
    os.set_inheritable(in_fd, False)
    os.set_inheritable(ev_fd, False)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.close(out_fd)
    os.close(err_fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.setsid()
    os.environ.update(req.get("env") or {})
    cwd = req.get("cwd") or "/"
    EVENTS = os.fdopen(ev_fd, "wb")
    sys.stdout = EventStream("stdout", 1)
    sys.stderr = EventStream("stderr", 2)
    STREAMS[:] = [sys.stdout, sys.stderr]
    send({"type": "ready"})
    try:
        os.chdir(cwd)
    except OSError as e:
        send({"type": "error", "name": type(e).__name__, "value": str(e), "traceback": []})
    sys.path[0] = ""  # the code's directory, not the executor's

    def between_runs(signum, frame):
        pass

    signal.signal(signal.SIGINT, between_runs)
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is not None:
        plt.show = lambda *args, **kwargs: flush_figures()

    requests = os.fdopen(in_fd, "rb")
    count = 0
    for line in requests:
        try:
            req = json.loads(line)
        except ValueError:
            continue
        count += 1
        try:
            # SIGINT raises KeyboardInterrupt during a run only.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            shell.run_cell(req.get("code", ""), store_history=True)
            flush_figures()
        except BaseException:  # KeyboardInterrupt outside the cell, or a bug of ours
            shell.showtraceback()
        finally:
            signal.signal(signal.SIGINT, between_runs)
        send({"type": "complete", "executionCount": count})
    os._exit(0)


def zygote():
    global EVENTS
    sock = socket.socket(fileno=3)
    try:
        shell = build_shell()
    except ImportError as e:
        sock.send(json.dumps({"error": "cannot import %s: %s" % (e.name, e), "missing": e.name}).encode())
        return 1
    # Children's ends: reaped here, reported to the agent.
    rfd, wfd = os.pipe()
    os.set_blocking(wfd, False)
    signal.set_wakeup_fd(wfd)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # What the zygote holds now stays shared with its children: the
    # collector will not touch (and so copy) those pages in them.
    import gc

    gc.collect()
    gc.freeze()
    sock.send(json.dumps({"ready": True}).encode())
    import select

    while True:
        ready, _, _ = select.select([sock, rfd], [], [])
        if rfd in ready:
            os.read(rfd, 4096)
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
                sock.send(json.dumps({"exited": pid, "code": code}).encode())
        if sock in ready:
            fds = array.array("i")
            try:
                msg, anc, flags, addr = sock.recvmsg(1 << 20, socket.CMSG_SPACE(16 * fds.itemsize))
            except InterruptedError:
                continue
            if not msg:
                return 0  # the agent is gone
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
            fds = list(fds)
            try:
                req = json.loads(msg)
            except ValueError:
                req = None
            if req is None or len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                sock.send(json.dumps({"error": "bad fork request"}).encode())
                continue
            try:
                pid = os.fork()
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                sock.send(json.dumps({"error": "fork: %s" % e}).encode())
                continue
            if pid == 0:
                code = 0
                try:
                    sock.close()
                    os.close(rfd)
                    os.close(wfd)
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    child(shell, fds, req)
                except BaseException:
                    code = 1
                os._exit(code)
            for fd in fds:
                os.close(fd)
            sock.send(json.dumps({"pid": pid}).encode())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "zygote":
        sys.exit(zygote())
    sys.exit("usage: python_executor.py zygote")
