"""Call tests and assert tests (part of the runner payload: runs inside the sandbox).

The program is loaded by the candidate server (shim.py) in its own interpreter and answers calls
on private pipes with plain JSON data. Call tests: the runner sends each call and returns the
encoded value; the host compares it. Assert tests: a judge forked from the runner (trusted,
non-dumpable, another uid than the program) runs the test code with the program's names bound to
proxies, and reports one record per test on a pipe only the runner holds. Deadlines, restarts
after a crash or a timeout, and output caps are enforced by the runner.
"""
import ast
import builtins
import sys

MAX_REPLY = 64 << 20          # one return value from the candidate server
# The judge imports, for the test code, the stdlib modules the program imported; never these
# (side effects at import: a browser, a GUI, prints).
STDLIB = getattr(sys, "stdlib_module_names", frozenset(
    "math cmath re collections itertools functools heapq bisect string operator random statistics "
    "fractions decimal sys typing copy array datetime hashlib json".split()))
IMPORT_DENY = {"antigravity", "this", "idlelib", "turtledemo", "turtle", "tkinter", "webbrowser",
               "__hello__", "__phello__", "pydoc", "ensurepip", "venv"}


class Server:
    """The program loaded by the candidate server (shim), answering calls on private pipes."""

    def __init__(self, loop, job, jd, lim, n_calls):
        self.loop, self.lim = loop, lim
        req_r, self.req_w = os.pipe()
        self.rep_r, rep_w = os.pipe()
        argv = [C["python"], *C["python_flags"], "-c", SHIM_SRC, str(req_r), str(rep_w)]
        self.reader, self.frames, self.eof, self.bad = FrameReader(MAX_REPLY), [], False, False
        self.names, self.modules, self.imports, self.abort_send = None, {}, {}, lambda: None
        try:
            self.proc = Proc(loop, argv, jd, lim["cpu_s"] * (n_calls + 1), lim["memory_mb"],
                             lim["output_bytes"], pass_fds=(req_r, rep_w))
        except BlockingIOError:       # EAGAIN: the uid's process limit, filled by leftovers
            self.proc = None
            self.load_fail = {"status": "killed", "time_s": 0.0, "stdout": "", "stderr": "",
                              "exit_code": None, "detail": "could not start: process limit reached"}
            return
        finally:
            os.close(req_r)
            os.close(rep_w)
        loop.add(self.rep_r, self._on_reply)
        self.load_fail = self._load(job["code"], time.monotonic() + lim["wall_s"])

    def _on_reply(self, fd):
        try:
            data = os.read(fd, 1 << 16)
            self.frames += self.reader.feed(data)
            self.bad = self.bad or self.reader.too_big
        except (OSError, ValueError):
            data, self.bad = b"", True
        if not data or self.bad:
            self.eof = True
            self.loop.drop(fd)

    def request(self, obj, deadline):
        """Send one request; the reply (a dict), or None: then the caller takes failure()."""
        self.abort_send()
        self.abort_send = self.loop.send(os.dup(self.req_w), pack_frame(obj))
        self.loop.run(deadline, lambda: self.frames or self.eof or self.proc.over)
        reply = self.frames.pop(0) if self.frames and not self.proc.over else None
        if reply is not None and not isinstance(reply, dict):
            self.bad, reply = True, None
        return reply

    def _load(self, code, deadline):
        reply = self.request({"code": code}, deadline)
        if reply and isinstance(reply.get("ready"), list):
            self.names = [n for n in reply["ready"] if type(n) is str]
            mods, imps = reply.get("modules"), reply.get("imports")
            self.modules = {k: v for k, v in mods.items() if type(v) is str} if type(mods) is dict else {}
            self.imports = {k: v for k, v in imps.items() if type(v) is list and len(v) == 2
                            and all(type(x) is str for x in v)} if type(imps) is dict else {}
            return None
        if reply:
            why = str(reply.get("load_error"))[:2000]
            rec = self.failure(detail="program failed to load: " + why)
            if why.startswith("MemoryError"):
                rec["status"] = "memory_limit"
            return rec
        return self.failure(during="loading")

    def failure(self, detail=None, during="a call"):
        """Record for a call that got no valid answer (killed, exited, timed out, flooded)."""
        p = self.proc
        if not (p.over or self.bad or p.exited()):
            if self.eof:                       # closed its end but lives on: give it a moment
                self.loop.run(time.monotonic() + 0.5, p.exited)
            if not p.exited():
                p.kill("timeout" if not self.eof else "closed")
        rec = p.finish().record()
        if self.bad and not p.over:
            rec.update(status="output_limit" if self.reader.too_big else "runtime_error",
                       detail="malformed or oversized reply from the program")
        elif rec["status"] == "ok" or p.reason == "closed":
            rec.update(status="runtime_error", detail="program exited during " + during)
        if detail:
            rec.update(status="runtime_error", detail=detail)
        return rec

    def close(self):
        self.abort_send()
        if self.proc is not None:
            self.proc.finish(grace=0)
        for fd in (self.req_w, self.rep_r):
            self.loop.drop(fd)
            os.close(fd)


def run_calls(job, jd, lim):
    calls, out, srv, loop = job["calls"], [], None, Loop()
    try:
        for i, call in enumerate(calls):
            if srv is None:
                srv = Server(loop, job, jd, lim, len(calls) - i)
                if srv.load_fail:
                    out += [dict(srv.load_fail) for _ in calls[i:]]
                    break
            srv.proc.reset_output()
            reply = srv.request({"func": call["func"], "args": call["args"],
                                 "method": bool(call.get("method"))}, srv.proc.t0 + lim["wall_s"])
            if reply is None:
                out.append(srv.failure())
                srv.close()
                srv = None
                continue
            p = srv.proc
            rec = {"status": "ok", "time_s": round(time.monotonic() - p.t0, 4),
                   "stdout": p.out.decode("utf-8", "replace"), "stderr": p.err.decode("utf-8", "replace"),
                   "exit_code": None, "detail": ""}
            try:
                if "ok" in reply:
                    decode_value(reply["ok"])        # well-formed, within the nesting bound
                    rec["value"] = reply["ok"]
            except ValueError as e:
                reply = {"error": "malformed value: %s" % e}
            if "value" not in rec:
                rec.update(status="memory_limit" if reply.get("type") == "MemoryError" else
                           "runtime_error", detail=str(reply.get("error"))[:2000])
            out.append(rec)
    finally:
        if srv is not None:
            srv.close()
        loop.close()
    return out


# --- assert-style tests: a forked judge drives the program over plain-data calls -----------------

def _has_assert(node):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assert):
            return True
    return False


def plan_tests(code, entry_point):
    """[(setup code, test code)]: HumanEval `check(candidate)` as one test, else one test per
    top-level assert (or statement containing asserts, or call of a test function)."""
    tree = ast.parse(code)
    mk = lambda body: compile(ast.Module(body=body, type_ignores=[]), "<tests>", "exec")
    defs = {s.name for s in tree.body if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
    if entry_point and "check" in defs:
        return [(mk(tree.body), compile("check(candidate)", "<tests>", "exec"))]
    testfns = {s.name for s in tree.body if isinstance(s, ast.FunctionDef) and _has_assert(s)}
    plan, setup = [], []
    for s in tree.body:
        is_test = isinstance(s, ast.Assert) or (
            isinstance(s, (ast.For, ast.While, ast.If, ast.With, ast.Try)) and _has_assert(s)) or (
            isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
            and isinstance(s.value.func, ast.Name) and s.value.func.id in testfns)
        if is_test:
            plan.append((mk(setup), mk([s])))
            setup = []
        else:
            setup.append(s)
    return plan or [(mk([]), mk(tree.body))]


class _ServerGone(BaseException):
    """The program's server cannot answer any more: this test fails, the next gets a new one."""

    def __init__(self, status="runtime_error", detail="program died"):
        super().__init__(detail)
        self.status, self.detail = status, detail


class CandidateError(Exception):
    pass


def _failed_line(e, code):
    tb, line = e.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tests>":
            line = tb.tb_lineno
        tb = tb.tb_next
    lines = code.splitlines()
    return lines[line - 1].strip()[:300] if line and line <= len(lines) else ""


def bindable(names, code, entry_point):
    """The program's names the test code may see. A name that shadows a builtin (`abs`, `len`,
    `sorted`: `assert abs(f(x) - y) < 1e-6` would pass with a fake `abs`) is bound only if it
    is the entry point, or (no entry point) the only program name the tests use (MBPP's `sum`)."""
    used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    plain = [n for n in names if not hasattr(builtins, n)]
    shadowing = [n for n in names if hasattr(builtins, n)]
    if entry_point:
        return plain + [n for n in shadowing if n == entry_point]
    return plain + (shadowing if not used.intersection(plain) else [])


def _stdlib_attr(module, attr):
    """The judge's own copy of a stdlib object the program imported (`Counter`, `gcd`): the
    program may claim anything, but only a real stdlib object is ever bound."""
    if module.split(".")[0].lstrip("_") not in STDLIB or module.split(".")[0] in IMPORT_DENY:
        return None
    try:
        return getattr(__import__(module, fromlist=["_"]), attr, None)
    except BaseException:
        return None


def judge_main(job, plan, start, srv, req_w, rep_r, rec_w):
    """In the forked judge: run the tests from `start`, one record per test on rec_w."""
    os.set_blocking(req_w, True)                   # the runner's async sends share the flag
    def call(func, args, kwargs, method=False):
        try:
            req = {"func": func, "args": [encode_value(a) for a in args],
                   "kwargs": {k: encode_value(v) for k, v in kwargs.items()}, "method": method}
        except Unserialisable as e:
            raise TypeError("argument cannot be passed to the program: %s" % e) from None
        try:
            write_all(req_w, pack_frame(req))
            rep = read_frame(rep_r, MAX_REPLY)
        except OSError:
            raise _ServerGone() from None
        except ValueError as e:
            big = "exceeds" in str(e)
            raise _ServerGone("output_limit" if big else "runtime_error",
                              "return value too large" if big else "malformed reply") from None
        if not isinstance(rep, dict):
            raise _ServerGone(detail="program died" if rep is None else "malformed reply")
        try:
            if "ok" in rep:
                return decode_value(rep["ok"])
        except ValueError as e:
            rep = {"error": "malformed value: %s" % e}
        cls = getattr(builtins, str(rep.get("type")), None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = CandidateError
        try:
            exc = cls(str(rep.get("error"))[:1000])
        except Exception:
            exc = CandidateError(str(rep.get("error"))[:1000])
        exc._rlvr_candidate = True
        raise exc

    def proxy(name):
        def f(*args, **kwargs):
            return call(name, args, kwargs)
        f.__name__ = f.__qualname__ = name
        return f
    ns = {"__name__": "__rlvr_tests__", "__builtins__": builtins}
    for alias, modname in srv.modules.items():      # stdlib modules the program imported (MBPP
        top = modname.split(".")[0]                 # tests use `math` imported by the solution)
        if alias == modname and top in STDLIB and top not in IMPORT_DENY:
            try:
                ns[alias] = __import__(modname)
            except BaseException:
                pass
    ep = job["asserts"].get("entry_point")
    for name in bindable(srv.names, job["asserts"]["code"], ep):
        ns[name] = _stdlib_attr(*srv.imports[name]) if name in srv.imports else None
        if ns[name] is None:
            ns[name] = proxy(name)
    if ep:
        ns["candidate"] = proxy(ep)
    report = lambda obj: write_all(rec_w, pack_frame(obj))
    report({"start": start})
    for i, (setup, test) in enumerate(plan):
        if i < start:                              # replay setup after a restart
            try:
                exec(setup, ns)
            except BaseException:
                pass
            continue
        if i > start:
            report({"start": i})
        try:
            exec(setup, ns)
            exec(test, ns)
            report({"i": i, "status": "passed", "detail": ""})
        except _ServerGone as e:
            report({"i": i, "status": e.status, "detail": e.detail, "restart": True})
            return
        except BaseException as e:
            what = "%s: %s" % (type(e).__name__, str(e)[:500])
            if getattr(e, "_rlvr_candidate", False):
                report({"i": i, "status": "memory_limit" if type(e) is MemoryError else
                        "runtime_error", "detail": "program raised " + what})
            else:
                line = _failed_line(e, job["asserts"]["code"])
                report({"i": i, "status": "wrong_answer", "detail": (line + " -> " + what)[:1000]})


def run_asserts(job, jd, lim):
    plan = plan_tests(job["asserts"]["code"], job["asserts"].get("entry_point"))
    n, results, nxt, loop = len(plan), [None] * len(plan), 0, Loop()
    try:
        while nxt < n:
            srv = Server(loop, job, jd, lim, n - nxt)
            if srv.load_fail:
                results[nxt:] = [dict(srv.load_fail) for _ in range(n - nxt)]
                srv.close()
                break
            loop.drop(srv.rep_r)
            rec_r, rec_w = os.pipe()
            pid = os.fork()
            if pid == 0:                         # the judge
                try:
                    keep = sorted({0, 1, 2, srv.req_w, srv.rep_r, rec_w})
                    for a, b in zip(keep, keep[1:] + [1 << 16]):
                        os.closerange(a + 1, b)
                    judge_main(job, plan, nxt, srv, srv.req_w, srv.rep_r, rec_w)
                finally:
                    os._exit(0)
            os.close(rec_w)
            nxt = _watch_judge(loop, srv, rec_r, results, nxt, lim)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            loop.drop(rec_r)
            os.close(rec_r)
            srv.close()
    finally:
        loop.close()
    return results


def _watch_judge(loop, srv, rec_r, results, cur, lim):
    """Collect the judge's records; enforce each test's deadline. Returns the next test to run."""
    reader, frames, eof = FrameReader(), [], [False]

    def on_rec(fd):
        data = os.read(fd, 1 << 16)
        frames.extend(reader.feed(data))
        if not data:
            eof[0] = True
            loop.drop(fd)
    loop.add(rec_r, on_rec)
    p, deadline = srv.proc, time.monotonic() + lim["wall_s"]
    while True:
        loop.run(deadline, lambda: frames or eof[0] or p.over)
        if frames:
            f = frames.pop(0)
            if "start" in f:
                cur, deadline = f["start"], time.monotonic() + lim["wall_s"]
                p.reset_output()
                continue
            results[f["i"]] = {"status": f["status"], "time_s": round(time.monotonic() - p.t0, 4),
                               "stdout": p.out.decode("utf-8", "replace"), "exit_code": None,
                               "stderr": p.err.decode("utf-8", "replace"), "detail": f["detail"]}
            cur = f["i"] + 1
            if f.get("restart"):
                srv.eof = True
                results[f["i"]] = rec = srv.failure()
                if p.reason == "closed":
                    rec.update(status=f["status"], detail=f["detail"])
                return cur
            continue
        if eof[0] and not p.over:
            if cur < len(results):
                results[cur] = {"status": "sandbox_error", "time_s": 0.0, "stdout": "", "stderr": "",
                                "exit_code": None, "detail": "test harness exited unexpectedly"}
            return cur + 1
        if cur >= len(results):                # every test answered; the judge just did not exit
            return cur
        results[cur] = srv.failure()           # deadline, or output cap
        return cur + 1
