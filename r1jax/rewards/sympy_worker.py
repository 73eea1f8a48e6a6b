"""Symbolic equivalence in isolated worker processes with a hard wall-clock limit.

sympy can hang or exhaust memory on adversarial input (`9**9**9`, nested radicals, huge
simplifications), and `parse_expr` evaluates its input with Python's eval. So the trainer never
calls sympy on model text itself: it sends already-whitelisted strings (see math_answer.py) to a
small pool of long-lived worker processes over pipes, kills a worker that overruns its deadline,
and replaces it. Workers are started with `python -I` (no environment, no user site, no script
directory on sys.path), a minimal environment and a memory limit; they exit when their stdin
closes or their parent process is gone (a watchdog thread), so they never outlive the trainer. A
request whose worker died is retried once on a fresh worker. Inside the worker, parse_expr gets an explicit global dict with
empty `__builtins__` and only the sympy names the generated code needs.

Protocol: one JSON line per request {"pred": [str], "gold": [str], "unordered": bool}, one JSON
line per reply {"status": "equal" | "different" | "bad_pred" | "bad_gold" | "error"}; the worker
prints "ready" once sympy is imported. The parent adds "timeout" for a killed worker.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import re
import select
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT_S = 60.0  # importing sympy in a fresh worker, on a loaded 2-core machine
MEMORY_LIMIT_BYTES = 2 << 30
MAX_EXPONENT = 10_000  # |numeric exponent| above this (with base not 0, +-1) is rejected
FUNCTIONS = ("sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "asin", "acos", "atan", "log", "exp")
CONSTANTS = ("pi", "oo")
# the only names in parse_expr's global dict (what its generated code calls); never model names
GLOBAL_NAMES = ("Integer", "Float", "Rational", "Symbol", "Add", "Mul", "Pow")


# ---------------------------------------------------------------- child side (runs in the worker)


def _watch_parent(parent: int) -> None:
    """Exits the worker when the trainer is gone, even in the middle of a long computation."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _child_main() -> None:
    import resource

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()

    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):
        pass
    import sympy
    from sympy.parsing import sympy_parser as sp

    transformations = (sp.auto_symbol, sp.auto_number, sp.rationalize, sp.implicit_multiplication)
    safe_globals = {"__builtins__": {}, **{n: getattr(sympy, n) for n in GLOBAL_NAMES}}
    safe_locals = {n: getattr(sympy, n) for n in FUNCTIONS + CONSTANTS}
    safe_locals.update(e=sympy.E, i=sympy.I)  # MATH convention: Euler's number, imaginary unit

    allowed = re.compile(r"[0-9A-Za-z+\-*/().,]*").fullmatch

    def parse(text: str, evaluate: bool):
        return sp.parse_expr(
            text,
            local_dict=dict(safe_locals),
            global_dict=dict(safe_globals),
            transformations=transformations,
            evaluate=evaluate,
        )

    def guard(tree) -> None:
        for node in sympy.preorder_traversal(tree):
            if isinstance(node, sympy.Pow) and not node.exp.free_symbols:
                if node.base in (0, 1, -1):
                    continue
                if abs(complex(node.exp.evalf(15))) > MAX_EXPONENT:
                    raise ValueError("exponent too large")

    def load(text: str):
        if len(text) > 2000 or not allowed(text) or "__" in text:  # defence in depth
            raise ValueError("text outside the converter's language")
        tree = parse(text, evaluate=False)
        items = tree if isinstance(tree, tuple) else (tree,)
        for item in items:
            if not isinstance(item, sympy.Basic):
                raise ValueError("not an expression")
            guard(item)
        value = parse(text, evaluate=True)
        if isinstance(value, tuple):
            value = tuple(value)
        return value

    def equal(a, b) -> bool:
        if isinstance(a, tuple) or isinstance(b, tuple):
            if not (isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b)):
                return False
            return all(equal(x, y) for x, y in zip(a, b))
        diff = a - b
        return diff == 0 or sympy.simplify(diff) == 0

    def check(req: dict) -> str:
        try:
            golds = [load(s) for s in req["gold"]]
        except Exception:  # noqa: BLE001 - any failure of the gold is "unparseable"
            return "bad_gold"
        try:
            preds = [load(s) for s in req["pred"]]
        except Exception:  # noqa: BLE001
            return "bad_pred"
        if len(preds) != len(golds):
            return "different"
        if not req.get("unordered"):
            return "equal" if all(equal(p, g) for p, g in zip(preds, golds)) else "different"
        unused = list(range(len(golds)))
        for p in preds:  # greedy matching of a set of answers
            hit = next((j for j in unused if equal(p, golds[j])), None)
            if hit is None:
                return "different"
            unused.remove(hit)
        return "equal"

    print("ready", flush=True)
    for line in sys.stdin:
        try:
            status = check(json.loads(line))
        except Exception:  # noqa: BLE001 - a reply must always come back
            status = "error"
        print(json.dumps({"status": status}), flush=True)


# ---------------------------------------------------------------- parent side


class _Worker:
    def __init__(self):
        boot = (
            "import sys, runpy; sys.path[:] = "
            + repr([p for p in sys.path if os.path.isabs(p)])
            + "; "
            f"runpy.run_path({os.path.abspath(__file__)!r}, run_name='__main__')"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", boot],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.defpath, "OMP_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"},
            cwd="/",
            start_new_session=True,
        )
        self.fd = self.proc.stdout.fileno()
        self.ready = False
        self.buf = b""

    def send(self, request: dict) -> None:
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class SympyPool:
    """A few sympy worker processes; `run` checks a batch of requests, each under `timeout_s`."""

    def __init__(self, size: int = 2):
        self.size = max(1, int(size))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self.timeouts = 0

    def run(self, requests: list[dict], timeout_s: float = 2.0) -> list[str]:
        """Statuses in request order; a worker that overruns is killed and the request times out.

        `timeout_s` counts from when the worker is ready, so a fresh worker's sympy import (about
        a second, done in the background after a kill) is not charged to the request.
        """
        with self._lock:
            return self._run(requests, float(timeout_s))

    def _run(self, requests: list[dict], timeout_s: float) -> list[str]:
        results: list[str | None] = [None] * len(requests)
        pending = collections.deque(range(len(requests)))
        retried: set[int] = set()
        busy: dict[int, tuple[_Worker, int, float]] = {}
        while pending or busy:
            while pending and len(busy) < self.size:
                worker = self._idle.pop() if self._idle else _Worker()
                idx = pending.popleft()
                try:
                    worker.send(requests[idx])
                except OSError:  # an idle worker that died: retry once on a fresh one
                    worker.kill()
                    if idx in retried:
                        results[idx] = "error"
                    else:
                        retried.add(idx)
                        pending.appendleft(idx)
                    continue
                wait = timeout_s if worker.ready else STARTUP_TIMEOUT_S + timeout_s
                busy[worker.fd] = (worker, idx, time.monotonic() + wait)
            if not busy:
                continue
            delay = max(0.0, min(deadline for _, _, deadline in busy.values()) - time.monotonic())
            ready, _, _ = select.select(list(busy), [], [], delay)
            for fd in ready:
                worker, idx, deadline = busy[fd]
                chunk = os.read(fd, 65536)
                if not chunk:  # the worker died (memory limit, or killed from outside): retry once
                    del busy[fd]
                    worker.kill()
                    if idx in retried:
                        results[idx] = "error"
                    else:
                        retried.add(idx)
                        pending.appendleft(idx)
                    continue
                worker.buf += chunk
                while b"\n" in worker.buf and fd in busy:
                    line, worker.buf = worker.buf.split(b"\n", 1)
                    if line == b"ready":
                        worker.ready = True
                        busy[fd] = (worker, idx, time.monotonic() + timeout_s)
                        continue
                    results[idx] = json.loads(line).get("status", "error")
                    del busy[fd]
                    self._idle.append(worker)
            now = time.monotonic()
            for fd, (worker, idx, deadline) in list(busy.items()):
                if now >= deadline:
                    del busy[fd]
                    worker.kill()
                    results[idx] = "timeout"
                    self.timeouts += 1
                    self._idle.append(_Worker())  # start the replacement now, in the background
        return [r or "error" for r in results]

    def close(self) -> None:
        with self._lock:
            for worker in self._idle:
                worker.kill()
            self._idle.clear()


_POOLS: dict[int, SympyPool] = {}


def pool(size: int = 2) -> SympyPool:
    """The shared pool of `size` workers (created on first use, closed at exit)."""
    if int(size) not in _POOLS:
        _POOLS[int(size)] = SympyPool(size)
    return _POOLS[int(size)]


@atexit.register
def _close_all() -> None:
    for p in _POOLS.values():
        p.close()


if __name__ == "__main__":
    _child_main()
