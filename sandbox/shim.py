"""The candidate server: runs the program under test in its own fresh interpreter and answers calls.

Started by the runner as `python3 -I -c SHIM_SRC RFD WFD`, where SHIM_SRC is codec.py's source
followed by this file's. It reads `{"code": ...}` on RFD, runs the program as module `solution`
(so `if __name__ == "__main__":` blocks do not run), answers `{"ready": [top-level callables], "modules": {alias: module name}, "imports": {name:
[module, attribute]}}` (callables imported from other modules) or
`{"load_error": "Type: message"}` on WFD, then serves `{"func", "args", "kwargs", "method"}`
requests with `{"ok": encoded value}` or `{"error": "...", "type": "ExcName"}`.

Nothing here is trusted: the program can rewrite this loop, its builtins or the pipes. It can only
change what its own functions appear to return, which it controls anyway; the values are decoded
and compared in other processes.
"""


def _describe(e):
    try:
        msg = str(e)
    except BaseException:
        msg = "<unprintable>"
    return type(e).__name__ + ": " + msg[:1000]


def _shim_main():
    import sys
    import types
    rfd, wfd = int(sys.argv[1]), int(sys.argv[2])
    if "" in sys.path:
        sys.path.remove("")
    req = read_frame(rfd)
    if req is None:
        os._exit(0)
    mod = types.ModuleType("solution")
    mod.__file__ = "solution.py"
    sys.modules["solution"] = mod
    try:
        exec(compile(req["code"], "solution.py", "exec"), mod.__dict__)
        names, modules, imports = [], {}, {}
        for k, v in list(mod.__dict__.items()):
            if type(k) is str and not k.startswith("__"):
                if type(v) is types.ModuleType:
                    modules[k] = str(v.__name__)
                elif callable(v):
                    names.append(k)
                    where, attr = getattr(v, "__module__", None), getattr(v, "__name__", None)
                    src = sys.modules.get(where) if type(where) is str else None
                    if src is not None and where != "solution" and getattr(src, str(attr), None) is v:
                        imports[k] = [where, attr]       # e.g. from collections import Counter
        write_all(wfd, pack_frame({"ready": names, "modules": modules, "imports": imports}))
    except BaseException as e:
        write_all(wfd, pack_frame({"load_error": _describe(e)}))
        os._exit(0)
    while True:
        req = read_frame(rfd)
        if req is None:
            os._exit(0)
        try:
            if req.get("method"):
                fn = getattr(mod.__dict__["Solution"](), req["func"])
            else:
                fn = mod.__dict__[req["func"]]
            args = [decode_value(a) for a in req.get("args", ())]
            kwargs = {k: decode_value(v) for k, v in req.get("kwargs", {}).items()}
            out = pack_frame({"ok": encode_value(fn(*args, **kwargs))})
        except BaseException as e:
            out = pack_frame({"error": _describe(e), "type": type(e).__name__})
        write_all(wfd, out)


if __name__ == "__main__":
    _shim_main()
