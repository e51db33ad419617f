"""The runner: runs INSIDE the sandbox (a container or a local subprocess), one per slot.

Not imported: the host sends codec.py + procs.py + calls.py + `SHIM_SRC = ...` + this file (see
session.runner_source) to `python3 -I -S -c BOOTSTRAP`, so it needs nothing but a python3 (and
g++ for C++). Frames on its stdin/stdout: config -> hello, then job -> result, one per program.
It makes itself non-dumpable (a program of the same uid cannot read its /proc/<pid>/fd, environ
or mem) and a child subreaper (orphans come back to it and die at cleanup); as root it runs
programs as the candidate uid (default 65534). Each result frame carries an HMAC made with the
job's secret, which no program can see.
"""
import hashlib
import hmac
import shutil
import sys
import traceback

COMPILE_CAP = 64 << 10        # compiler output kept
WRAP_MAIN = r"""#include <unistd.h>
extern "C" int __real_main(int, char**, char**);
extern "C" int __wrap_main(int argc, char** argv, char** envp) {
  char nonce[32]; int got = 0;
  while (got < 32) { ssize_t k = read(RLVR_RFD, nonce + got, 32 - got); if (k <= 0) break; got += k; }
  close(RLVR_RFD);
  int r = __real_main(argc, argv, envp);
  if (r == 0 && got == 32) { ssize_t w = write(RLVR_WFD, nonce, 32); (void)w; }
  close(RLVR_WFD);
  return r;
}
"""


def _mount_tmpfs(path, flags, opts):
    if LIBC is None or LIBC.mount(b"tmpfs", path.encode(), b"tmpfs", flags, opts.encode()) != 0:
        raise OSError("cannot mount a tmpfs on %s (errno %d)" % (path, LIBC and ctypes.get_errno()))


def configure(cfg):
    """Apply the host's config. "hide" and "tmpfs" need root in a private mount namespace (the
    local backend under `unshare`): empty read-only tmpfs over host dirs programs must not read
    (datasets, homes), fresh writable tmpfs for the scratch dirs."""
    C.update(cfg)
    for path in cfg.get("hide", ()):              # MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
        _mount_tmpfs(path, 15, "size=16k,mode=755")
    for path in cfg.get("tmpfs", ()):
        if os.path.isdir(path):                  # MS_NOSUID | MS_NODEV
            _mount_tmpfs(path, 6, "size=%dm,mode=1777" % cfg.get("tmpfs_mb", 512))
    os.makedirs(C["workdir"], exist_ok=True)
    C["uid"] = C["gid"] = None
    if os.geteuid() == 0:                        # never run a program as root
        C["uid"] = cfg.get("uid") or 65534
        C["gid"] = cfg.get("gid") or C["uid"]
        C.setdefault("nproc", 128)               # RLIMIT_NPROC binds only a non-root uid
        os.chmod(C["workdir"], 0o711)
    os.chdir("/")


def compile_cpp(job, jd, lim, extra=()):
    """Compile a C++ (or C) program; (ok, compiler output)."""
    c = job["language"] == "c"
    with open(os.path.join(jd, "prog.c" if c else "prog.cpp"), "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(job["code"])
    sources = ["prog.c" if c else "prog.cpp"]
    if job.get("cpp_driver") is not None:
        for name, text in (("driver.cpp", job["cpp_driver"]), ("rlvr_main.cpp", WRAP_MAIN)):
            with open(os.path.join(jd, name), "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(text)
            sources.append(name)
    argv = ([C["cc"], "-O2", "-std=c11", "-o", "prog", *sources, *extra, "-lm"] if c else
            [C["cxx"], "-O2", "-std=c++17", "-o", "prog", *sources, *extra])
    rec = run_program(argv, jd, lim["compile_s"], lim["compile_s"], max(2048, lim["memory_mb"]),
                      COMPILE_CAP)
    text = (rec["stdout"] + rec["stderr"])[:COMPILE_CAP]
    if rec["status"] != "ok" or not os.path.exists(os.path.join(jd, "prog")):
        return False, text + ("\n[compiler: %s]" % rec["detail"] if rec["status"] != "runtime_error" else "")
    return True, text


def run_cpp_driver(job, jd, lim):
    nr, nw = os.pipe()
    rr, rw = os.pipe()
    try:
        ok, text = compile_cpp(job, jd, lim, ("-Wl,--wrap=main", "-DRLVR_RFD=%d" % nr,
                                              "-DRLVR_WFD=%d" % rw))
        if not ok:
            return None, text
        nonce = os.urandom(16).hex().encode()
        os.write(nw, nonce)
        os.close(nw)
        nw = None
        rec = run_program(["./prog"], jd, lim["wall_s"], lim["cpu_s"], lim["memory_mb"],
                          lim["output_bytes"], pass_fds=(nr, rw))
        os.close(rw)
        rw = None
        os.set_blocking(rr, False)
        try:
            got = os.read(rr, 64)
        except BlockingIOError:
            got = b""
        if rec["status"] == "ok":
            rec["status"] = "passed" if hmac.compare_digest(got, nonce) else "wrong_answer"
            if rec["status"] == "wrong_answer":
                rec["detail"] = "exit 0 without the test driver's main returning 0"
        elif rec["status"] == "runtime_error" and rec["exit_code"] == -signal.SIGABRT:
            rec.update(status="wrong_answer", detail="assertion failed (SIGABRT)")
        return rec, text
    finally:
        for fd in (nr, nw, rr, rw):
            if fd is not None:
                os.close(fd)


# --- jobs -----------------------------------------------------------------------------------------

def dispatch(job, jd):
    lim = job["limits"]
    n = len(job.get("io_inputs") or job.get("calls") or [0])
    compile_output = ""
    if job["language"] in ("cpp", "c"):
        if job.get("cpp_driver") is not None:
            rec, compile_output = run_cpp_driver(job, jd, lim)
            if rec is not None:
                return {"results": [rec], "compile_output": compile_output}
            ok = False
        else:
            ok, compile_output = compile_cpp(job, jd, lim)
        if not ok:
            rec = {"status": "compile_error", "time_s": 0.0, "stdout": "", "stderr": "",
                   "exit_code": None, "detail": "compilation failed"}
            return {"results": [dict(rec) for _ in range(n)], "compile_output": compile_output}
        argv = ["./prog"]
    else:
        name = "prog.sh" if job["language"] == "bash" else "prog.py"
        with open(os.path.join(jd, name), "w", encoding="utf-8", errors="surrogatepass") as f:
            f.write(job["code"])
        argv = [C["bash"], name] if job["language"] == "bash" else [C["python"], *C["python_flags"], name]
    if job.get("io_inputs") is not None:
        results = run_io(job, jd, argv, lim)
    elif job.get("calls") is not None:
        results = run_calls(job, jd, lim)
    elif job.get("asserts") is not None:
        results = run_asserts(job, jd, lim)
    else:
        results = run_io({"io_inputs": [job.get("stdin") or ""]}, jd, argv, lim)
    return {"results": results, "compile_output": compile_output}


def handle(job):
    key = bytes.fromhex(job.get("secret", ""))
    jd = os.path.join(C["workdir"], "job-" + os.urandom(8).hex())
    try:
        os.mkdir(jd, 0o700)
        if C["uid"] is not None:
            os.chown(jd, C["uid"], C["gid"])
        out = dispatch(job, jd)
    except Exception:
        out = {"error": traceback.format_exc()[-3000:]}
    out["dirty"] = not cleanup()
    shutil.rmtree(jd, ignore_errors=True)
    _wipe()
    try:
        out["mac"] = hmac.new(key, canonical(out), hashlib.sha256).hexdigest()
    except (ValueError, RecursionError) as e:
        out = {"error": "unencodable result: %s" % e, "dirty": out["dirty"]}
        out["mac"] = hmac.new(key, canonical(out), hashlib.sha256).hexdigest()
    return out


def _wipe():
    """Empty the shared scratch dirs (config "wipe") so nothing carries over to the next job."""
    for d in C["wipe"]:
        for name in os.listdir(d) if os.path.isdir(d) else ():
            path = os.path.join(d, name)
            if (C["workdir"] + "/").startswith(path + "/"):
                continue
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass


def main():
    global LIBC, ctypes
    try:
        import ctypes
        LIBC = ctypes.CDLL(None, use_errno=True)
    except Exception:
        LIBC = None
    nondumpable = prctl(4, 0)                    # PR_SET_DUMPABLE 0: no /proc/<pid>/fd, mem, environ
    subreaper = prctl(36, 1)                     # PR_SET_CHILD_SUBREAPER: orphans come back to us
    inp, out = os.dup(0), os.dup(1)              # private channel; fds 0 and 1 become /dev/null
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    try:
        configure(read_frame(inp))
    except Exception:
        write_all(out, pack_frame({"hello": 0, "error": traceback.format_exc()[-2000:]}))
        return
    write_all(out, pack_frame({"hello": 1, "pid": os.getpid(), "uid": os.getuid(),
                               "candidate_uid": C["uid"], "nondumpable": nondumpable,
                               "subreaper": subreaper, "python": sys.version.split()[0]}))
    while True:
        job = read_frame(inp)
        if job is None:
            cleanup()
            return
        write_all(out, pack_frame(handle(job)))


if __name__ == "__rlvr_runner__":
    main()
