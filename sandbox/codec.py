"""Plain-data values and length-prefixed JSON frames, shared by the host, the runner and the
candidate server.

Stdlib only, no package-relative imports and no `from __future__`: the runner that is sent into a
sandbox is this file's source followed by runner.py's, exec'd in a bare `python3 -I -S`.

Values cross process boundaries only as JSON data with type tags. Exact builtin types only: a
subclass (an `int` whose `__eq__` is always true, a list with a lying `__len__`) or any other
object is refused as unserialisable (the one exception: the dict subclasses of `collections`,
read through dict's own methods), and the decoder builds fresh builtins, so no object of the
program under test ever reaches the process that compares.
"""
import builtins
import json
import math
import os

MAX_DEPTH = 100


class Unserialisable(ValueError):
    pass


def encode_value(x, depth=0):
    """A plain value -> JSON data. list -> list; other containers and special values are tagged
    one-key objects: {"t": tuple}, {"d": [[k, v], ...]}, {"s": set}, {"fs": frozenset},
    {"b": bytes hex}, {"ba": bytearray hex}, {"f": "nan"|"inf"|"-inf"}, {"c": [re, im]},
    {"T": builtin type name}. Anything else raises Unserialisable."""
    t = type(x)
    if x is None or t is bool or t is str or t is int:
        return x
    if t is float:
        return x if math.isfinite(x) else {"f": repr(x)}
    if depth > MAX_DEPTH:
        raise Unserialisable("value nested too deeply")
    if t is list:
        return [encode_value(v, depth + 1) for v in x]
    if t is tuple:
        return {"t": [encode_value(v, depth + 1) for v in x]}
    if t is dict:
        return {"d": [[encode_value(k, depth + 1), encode_value(v, depth + 1)] for k, v in x.items()]}
    if t is set or t is frozenset:
        return {"s" if t is set else "fs": [encode_value(v, depth + 1) for v in x]}
    if t is bytes or t is bytearray:
        return {"b" if t is bytes else "ba": x.hex()}
    if t is complex:
        return {"c": [encode_value(x.real), encode_value(x.imag)]}
    if t is type and getattr(builtins, x.__name__, None) is x:
        return {"T": x.__name__}                  # a builtin type (MBPP passes `int`, `str`)
    if isinstance(x, dict) and t.__module__ == "collections":
        # Counter, OrderedDict, defaultdict: read through dict's own methods, never the
        # subclass's, and decoded as a plain dict
        return {"d": [[encode_value(k, depth + 1), encode_value(v, depth + 1)]
                      for k, v in dict.items(x)]}
    raise Unserialisable("unserialisable value of type " + t.__name__)


def decode_value(v, depth=0):
    """JSON data from encode_value -> fresh builtin objects. Raises ValueError on anything else."""
    t = type(v)
    if v is None or t is bool or t is int or t is float or t is str:
        return v
    if depth > MAX_DEPTH + 2:
        raise ValueError("value nested too deeply")
    if t is list:
        return [decode_value(x, depth + 1) for x in v]
    if t is not dict or len(v) != 1:
        raise ValueError("malformed encoded value")
    (tag, body), = v.items()
    try:
        if tag == "f" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag in ("b", "ba"):
            return (bytes if tag == "b" else bytearray).fromhex(body)
        if tag == "T" and isinstance(getattr(builtins, str(body), None), type):
            return getattr(builtins, body)
        items = [decode_value(x, depth + 1) for x in body]
        if tag == "t":
            return tuple(items)
        if tag == "d":
            return dict((k, val) for k, val in items)
        if tag == "s":
            return set(items)
        if tag == "fs":
            return frozenset(items)
        if tag == "c":
            return complex(items[0], items[1])
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError("malformed encoded value: " + str(e)[:200]) from None
    raise ValueError("unknown value tag " + repr(tag)[:40])


def pack_frame(obj):
    """4-byte big-endian length + UTF-8 JSON (lone surrogates from a program's strings survive)."""
    data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = data.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(4, "big") + data


def _no_constant(name):
    raise ValueError("non-finite number " + name + " in a frame")


def unpack_body(data):
    """Parse a frame body; any malformation (bad UTF-8 or JSON, NaN, huge ints, nesting that
    exhausts the stack) is a ValueError."""
    try:
        return json.loads(data.decode("utf-8", "surrogatepass"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise ValueError("malformed frame: " + str(e)[:200]) from None


def canonical(obj):
    """The bytes a result frame's MAC is computed over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode("ascii")


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def read_exact(fd, n):
    """Blocking read of exactly n bytes; None at EOF."""
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, min(n - len(buf), 1 << 20))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def read_frame(fd, max_size=1 << 30):
    """Blocking read of one frame; None at EOF. Raises ValueError when the frame is too large."""
    head = read_exact(fd, 4)
    if head is None:
        return None
    n = int.from_bytes(head, "big")
    if n > max_size:
        raise ValueError("frame of %d bytes exceeds %d" % (n, max_size))
    body = read_exact(fd, n)
    return None if body is None else unpack_body(body)


class FrameReader:
    """Incremental frame parser for non-blocking reads. `feed` returns the frames completed."""

    def __init__(self, max_size=1 << 30):
        self.buf = bytearray()
        self.max_size = max_size
        self.too_big = False

    def feed(self, data):
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            n = int.from_bytes(self.buf[:4], "big")
            if n > self.max_size:
                self.too_big = True
                return frames
            if len(self.buf) < 4 + n:
                break
            frames.append(unpack_body(bytes(self.buf[4:4 + n])))
            del self.buf[:4 + n]
        return frames
