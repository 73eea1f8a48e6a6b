"""Math equivalence by Math-Verify in isolated worker processes with a hard wall-clock limit.

Hugging Face's Math-Verify (package `math-verify`, on latex2sympy2_extended and sympy) parses LaTeX
answers - sets, intervals, `\\pm`, equations, percentages, units, mixed numbers - and decides
equivalence. Model text is hostile and sympy can hang or exhaust memory (`9^{9^{9}}`, nested
radicals, huge simplifications), so the trainer never runs either on model text: it sends the
extracted answer strings to a small pool of long-lived worker processes over pipes, kills a worker
that overruns its deadline, and replaces it. Workers are started with `python -I` (no environment,
no user site, no script directory on sys.path), a minimal environment and a memory limit; they exit
when their stdin closes or their parent process is gone (a watchdog thread), so they never outlive
the trainer. A request whose worker died is retried once on a fresh worker.

Inside the worker only Math-Verify's LaTeX path runs (an ANTLR parser that builds sympy objects; its
plain-expression path, which calls sympy's `parse_expr` and so Python's eval, is not enabled). The
library's own signal-based timeouts are off: the pool's kill is the time limit. What the worker
adds to the library (each because the library lacks it):
- numeric comparison at 50 significant digits instead of 15 (at 15, `\\sqrt{2}+10^{-30}` equals
  `\\sqrt{2}`), via the library's `numeric_precision`;
- a bound on numeric exponents before anything is evaluated (`9^{9^{9}}` is rejected at once
  instead of running into the time limit and costing a worker restart).

Protocol: one JSON line per request {"pred": str | null, "gold": str}, one JSON line per reply
{"status": "equal" | "different" | "bad_pred" | "bad_gold" | "error"}; the worker prints "ready"
once the library is imported. The parent adds "timeout" for a killed worker.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import select
import subprocess
import sys
import threading
import time

STARTUP_TIMEOUT_S = 60.0  # importing sympy + math_verify in a fresh worker, on a loaded machine
MEMORY_LIMIT_BYTES = 2 << 30
MAX_EXPONENT = 10_000  # |numeric exponent| above this (with base not 0, +-1) is rejected
NUMERIC_DIGITS = 50  # Math-Verify's numeric_precision (its default, 15, accepts 1e-30 off)
MAX_TEXT = 2000  # defence in depth: the trainer sends answers of at most 1000 characters


# ---------------------------------------------------------------- child side (runs in the worker)


def _watch_parent(parent: int) -> None:
    """Exits the worker when the trainer is gone, even in the middle of a long computation."""
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(0)


def _child_main() -> None:
    import logging
    import resource

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ValueError, OSError):
        pass
    logging.disable(logging.CRITICAL)  # the library logs parse failures; stderr is discarded
    import sympy
    from math_verify import LatexExtractionConfig, parse, verify

    extraction = [LatexExtractionConfig(boxed_match_priority=0)]

    def guard(tree) -> None:
        if not isinstance(tree, sympy.Basic):
            return
        for node in sympy.preorder_traversal(tree):
            if isinstance(node, sympy.Pow) and not node.exp.free_symbols:
                if node.base in (0, 1, -1):
                    continue
                if abs(complex(node.exp.evalf(15))) > MAX_EXPONENT:
                    raise ValueError("exponent too large")

    def read(text: str) -> list:
        """The sympy objects Math-Verify reads from one answer (its string fallbacks dropped)."""
        if not isinstance(text, str) or len(text) > MAX_TEXT:
            raise ValueError("not an answer")
        got = parse(
            "\\boxed{" + text + "}",
            extraction_config=extraction,
            extraction_mode="first_match",
            parsing_timeout=None,
        )
        out = [x for x in got if isinstance(x, (sympy.Basic, sympy.MatrixBase))]
        for x in out:
            guard(x)
        return out

    def check(req: dict) -> str:
        try:
            golds = read(req["gold"])
        except Exception:  # noqa: BLE001 - any failure of the gold is "unparseable"
            return "bad_gold"
        if not golds:
            return "bad_gold"
        if req.get("pred") is None:
            return "different"
        try:
            preds = read(req["pred"])
        except Exception:  # noqa: BLE001
            return "bad_pred"
        if not preds:
            return "bad_pred"
        same = verify(golds, preds, numeric_precision=NUMERIC_DIGITS, timeout_seconds=None)
        return "equal" if same else "different"

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
                worker = self._take_idle()
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

    def warm(self, timeout_s: float = STARTUP_TIMEOUT_S) -> int:
        """Start workers up to the pool's size and wait until they have imported the library, so
        that no later request (or timed region) waits for an import. Returns how many are ready;
        one that dies or is not ready within `timeout_s` is killed and dropped."""
        with self._lock:
            self._idle += [_Worker() for _ in range(self.size - len(self._idle))]
            deadline = time.monotonic() + timeout_s
            waiting = {w.fd: w for w in self._idle if not w.ready}
            dead: list[_Worker] = []
            while waiting and time.monotonic() < deadline:
                ready, _, _ = select.select(
                    list(waiting), [], [], max(0.0, deadline - time.monotonic())
                )
                for fd in ready:
                    worker = waiting[fd]
                    chunk = os.read(fd, 65536)
                    worker.buf += chunk
                    if b"ready\n" in worker.buf:
                        worker.buf, worker.ready = worker.buf.split(b"ready\n", 1)[1], True
                    if worker.ready or not chunk:  # ready, or died while importing
                        del waiting[fd]
                        if not worker.ready:
                            dead.append(worker)
            for worker in dead + list(waiting.values()):
                worker.kill()
                self._idle.remove(worker)
            return sum(w.ready for w in self._idle)

    def _take_idle(self) -> _Worker:
        """A ready idle worker if there is one (a replacement may still be importing), else any."""
        for i in range(len(self._idle) - 1, -1, -1):
            if self._idle[i].ready:
                return self._idle.pop(i)
        return self._idle.pop() if self._idle else _Worker()

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
