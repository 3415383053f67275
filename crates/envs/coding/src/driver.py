# envtorch coding-env driver: runs inside the sandbox as `python -I -u -X utf8 -c <this> MODE CAP`.
#
# Channel: the Rust side writes requests to our fd 0 and reads replies from our fd 1.
# At start we move both to private non-inheritable fds and point 0/1/2 at /dev/null, so
# user code (and its subprocesses) printing to fd 1 cannot corrupt the channel.
# Every message, both ways, is a sequence of parts, each a 4-byte big-endian length then bytes.
# Request: 1 part, the UTF-8 code.  Reply: 3 parts, JSON metadata, stdout bytes, stderr bytes.
# MODE "exec": run code in one persistent namespace.  MODE "check": only report whether
# the code parses (used for rewards; never runs code).
import ast
import builtins
import json
import linecache
import os
import struct
import sys
import traceback

_MODE = sys.argv[1]
_CAP = int(sys.argv[2])
_dumps = json.dumps
_pack = struct.pack
_unpack = struct.unpack
_read = os.read
_write = os.write
_dup2 = os.dup2
_DRIVER_FILE = "<string>"

_RFD = os.dup(0)  # os.dup returns non-inheritable descriptors.
_WFD = os.dup(1)
_NULL = os.open(os.devnull, os.O_RDWR)
for _fd in (0, 1, 2):
    _dup2(_NULL, _fd)


def _non_dumpable():
    # Make /proc/<pid>/{mem,environ,cwd,...} of this interpreter unreadable to other
    # processes of the same uid (matters when landlock is unavailable). Best effort.
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
    except Exception:
        pass


def _end_group():
    # The session is gone (closed, or the worker died): take every process this session
    # started with us. (While user code is busy, the `coding-env lifeline` watcher in our
    # process group does the same when the request pipe hangs up.)
    try:
        os.killpg(0, 9)
    finally:
        os._exit(0)


def _read_exact(n):
    buf = bytearray()
    while len(buf) < n:
        chunk = _read(_RFD, n - len(buf))
        if not chunk:
            _end_group()
        buf += chunk
    return bytes(buf)


def _recv():
    (n,) = _unpack(">I", _read_exact(4))
    return _read_exact(n)


def _send(meta, out=b"", err=b""):
    data = bytearray()
    for part in (_dumps(meta).encode("utf-8"), out, err):
        data += _pack(">I", len(part))
        data += part
    view = memoryview(bytes(data))
    while view:
        n = _write(_WFD, view)
        view = view[n:]


def _check_loop():
    _send({"ready": True})
    while True:
        code = _recv().decode("utf-8", "surrogateescape")
        try:
            compile(code, "<check>", "exec", ast.PyCF_ONLY_AST)
            parses = True
        except BaseException:  # SyntaxError, and ValueError (NUL), RecursionError, MemoryError
            parses = False
        _send({"parses": parses})


_ns = {"__name__": "__main__", "__builtins__": builtins}
_VALUE_SLOT = "_envtorch_last_value_"


def _load(target):
    expr = ast.Expression(body=target)
    for node in ast.walk(expr):
        if hasattr(node, "ctx"):
            node.ctx = ast.Load()
    ast.fix_missing_locations(expr)
    return expr


def _execute(code, filename):
    """Run code; return (has_value, value) of the last expression or assignment."""
    tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST)
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    body = tree.body
    last = body[-1] if body else None
    if isinstance(last, ast.Expr):
        head = ast.Module(body=body[:-1], type_ignores=[])
        exec(compile(head, filename, "exec"), _ns)
        tail = ast.Expression(body=last.value)
        return True, eval(compile(tail, filename, "eval"), _ns)
    if isinstance(last, ast.Assign):
        # `a = b = expr` becomes `slot = expr; a = b = slot`, so expr runs once.
        slot = ast.copy_location(
            ast.Assign(targets=[ast.Name(id=_VALUE_SLOT, ctx=ast.Store())], value=last.value),
            last,
        )
        rebind = ast.copy_location(
            ast.Assign(targets=last.targets, value=ast.Name(id=_VALUE_SLOT, ctx=ast.Load())),
            last,
        )
        module = ast.Module(body=body[:-1] + [slot, rebind], type_ignores=[])
        ast.fix_missing_locations(module)
        try:
            exec(compile(module, filename, "exec"), _ns)
            return True, _ns.get(_VALUE_SLOT)
        finally:
            _ns.pop(_VALUE_SLOT, None)
    exec(compile(tree, filename, "exec"), _ns)
    if isinstance(last, ast.AugAssign) or (isinstance(last, ast.AnnAssign) and last.value is not None):
        return True, eval(compile(_load(last.target), filename, "eval"), _ns)
    return False, None


def _user_traceback(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == _DRIVER_FILE:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _drain(fd):
    """Return (first CAP bytes, total size) of a capture memfd."""
    try:
        total = os.fstat(fd).st_size
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        want = min(total, _CAP)
        while want > 0:
            chunk = os.pread(fd, want, sum(len(c) for c in chunks))
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        return b"".join(chunks), total
    finally:
        os.close(fd)


def _fresh_stream(fd, current):
    if current is None or getattr(current, "closed", True):
        return open(fd, "w", encoding="utf-8", errors="surrogateescape", closefd=False, buffering=1)
    return current


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass


def _encode(text):
    return text.encode("utf-8", "backslashreplace")


def _exec_loop():
    _non_dumpable()
    sys.path.insert(0, os.getcwd())  # let code import modules it wrote to its scratch dir
    sys.__stdout__ = _fresh_stream(1, sys.__stdout__)
    sys.__stderr__ = _fresh_stream(2, sys.__stderr__)
    _send({"ready": True})
    step = 0
    while True:
        code = _recv().decode("utf-8", "surrogateescape")
        step += 1
        filename = f"<step {step}>"
        out_fd = os.memfd_create("stdout")
        err_fd = os.memfd_create("stderr")
        _dup2(out_fd, 1)
        _dup2(err_fd, 2)
        sys.__stdout__ = _fresh_stream(1, sys.__stdout__)
        sys.__stderr__ = _fresh_stream(2, sys.__stderr__)
        sys.stdout = sys.__stdout__
        sys.stderr = sys.__stderr__
        exit_code = 0
        has_value, value, tb = False, None, ""
        try:
            has_value, value = _execute(code, filename)
        except SystemExit as exc:
            if exc.code is None:
                exit_code = 0
            elif isinstance(exc.code, int) and -(2**31) <= exc.code < 2**31:
                exit_code = exc.code
            else:
                exit_code = 1
                tb = str(exc.code) + "\n"
        except BaseException as exc:
            exit_code = 1
            try:
                tb = _user_traceback(exc)
            except BaseException:
                tb = "<traceback unavailable>\n"
        _flush()
        _dup2(_NULL, 1)
        _dup2(_NULL, 2)
        logs, out_total = _drain(out_fd)
        errs, err_total = _drain(err_fd)
        rendered = b""
        if exit_code == 1 and tb:
            logs, out_total = b"", 0  # as the reference: prints before an exception are discarded
        elif has_value and value is not None:
            try:
                rendered = _encode(_dumps(value))
            except BaseException:
                try:
                    rendered = _encode(repr(value))
                except BaseException:
                    rendered = b"<unrepresentable value>"
        parts = [p for p in (logs, rendered) if p]
        stdout = b"\n".join(parts)
        stdout_total = out_total + (len(rendered) + (1 if logs and rendered else 0))
        stderr = errs + _encode(tb)
        stderr_total = err_total + len(stderr) - len(errs)
        _send(
            {
                "exit_code": exit_code,
                "stdout_total": stdout_total,
                "stderr_total": stderr_total,
            },
            stdout[:_CAP],
            stderr[:_CAP],
        )
        del value


if _MODE == "check":
    _check_loop()
else:
    _exec_loop()
