"""Plain mode (no namespaces) protects its supervisor: hostile programs try to signal it, write
outside their folder, read a canary and reach sockets the test opens, under a supervisor that runs
in a process of its own (tests/sandbox_driver.py) as root and as an unprivileged uid it drops to
first; one run also tries to SIGKILL every nearby pid while another run is under way. Each
program would print what it managed, so a missing protection shows as a number, and a
supervisor that dies shows as a missing report. Configurations that reproduce an older kernel
(`landlock_max`) check that the report names what is then missing, and that it really is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest
import sandbox_checks as sc

from r1jax.rewards.sandbox import confine
from r1jax.rewards.sandbox.launch import blocked_parent

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(REPO, "tests", "sandbox_driver.py")
NOBODY = 65534
ARCH = confine.seccomp_arch()
ABI = confine.landlock_abi()

SIGNALS = """
import ctypes, os, signal
sup = os.getppid()
grp = os.getpgid(sup)
libc = ctypes.CDLL(None, use_errno=True)
def tgkill(sig):
    if libc.syscall({tgkill}, sup, sup, sig) != 0:
        raise OSError(ctypes.get_errno(), "tgkill")
def pidfd(sig):
    fd = os.pidfd_open(sup)
    try:
        signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)
out = []
for sig in (signal.SIGTERM, signal.SIGKILL):
    for name, fn in (("kill", os.kill), ("killpg", lambda _, s: os.killpg(grp, s)),
                     ("tgkill", lambda _, s: tgkill(s)), ("pidfd", lambda _, s: pidfd(s))):
        try:
            fn(sup, sig)
            out.append(f"{{name}}{{int(sig)}}:sent")
        except OSError as e:
            out.append(f"{{name}}{{int(sig)}}:{{e.errno}}")
print(sup, " ".join(out))
"""
KILL_ALL = """
import os, signal
for sig in (signal.SIGTERM, signal.SIGKILL):
    try:
        os.kill(-1, sig)
    except OSError as e:
        print(e.errno)
"""
WRITES = """
import os, tempfile
landed = []
for p in {targets!r}:
    try:
        with open(p, "w") as f:
            f.write("pwned")
        landed.append(p)
    except OSError:
        pass
for p in ("mine", os.path.join(tempfile.gettempdir(), "mine")):  # its own folders still work
    with open(p, "w") as f:
        f.write("ok")
print(len(landed))
"""
READ = """
try:
    print(open({canary!r}).read())
except OSError as e:
    print("denied", e.errno)
"""
NETWORK = """
import socket
def tcp():
    socket.create_connection(("127.0.0.1", {tcp}), timeout=1).close()
def udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", {udp}))
def unix(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(1)
        s.connect(path)
def pair():
    a, b = socket.socketpair()
    a.sendall(b"x")
    assert b.recv(1) == b"x"
got = []
for name, fn in (("tcp", tcp), ("udp", udp), ("unix", lambda: unix({unix!r})),
                 ("abstract", lambda: unix({abstract!r})), ("pair", pair)):
    try:
        fn()
        got.append(name)
    except OSError:
        pass
print(got)
"""
ESCAPE = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.setsid()
        print("setsid:ok", flush=True)
    except OSError as e:
        print(f"setsid:{{e.errno}}", flush=True)
    os.closerange(0, 3)
    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
"""

VICTIM = """
import time
print("up", flush=True)
time.sleep(1.5)
print("alive")
"""
ATTACKER = """
import os, signal, time
time.sleep(0.3)
me, n = os.getpid(), 0
for pid in range(max(2, me - 3000), me + 3000):  # every nearby process: the other run, the
    if pid != me:                                  # supervisor, its sentinel, its other children
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except OSError:
            pass
print(n)
"""


def _system_python() -> str | None:
    """A Python that any uid can run (for the unprivileged supervisor), or None."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(path) and blocked_parent(os.path.realpath(path)) is None:
            return path
    return None


SYSTEM_PY = _system_python()
CONFIGS = {  # name: (supervisor uid, its Python, landlock_max, Landlock domains it nests in)
    "root-own-python": (None, sys.executable, None, 0),
    "root-system-python": (None, SYSTEM_PY, None, 0),
    "nobody": (NOBODY, SYSTEM_PY, None, 0),
    "nobody-landlock5": (NOBODY, SYSTEM_PY, 5, 0),
    "root-no-landlock": (None, sys.executable, 0, 0),
    "nobody-landlock-refused": (NOBODY, SYSTEM_PY, None, 16),
}


@pytest.fixture(autouse=True)
def clean():
    yield
    sc.assert_clean()


@pytest.fixture
def world(tmp_path):
    """Sockets, a canary and world-writable folders (so that only the sandbox holds writes back)."""
    root = tempfile.mkdtemp(prefix="r1jax-sup-")
    os.chmod(root, 0o777)
    dirs = {k: os.path.join(root, k) for k in ("cwd", "runs", "public")}
    for d in dirs.values():
        os.mkdir(d)
        os.chmod(d, 0o1777)
    canary = os.path.join(dirs["public"], "canary")
    with open(canary, "w") as f:
        f.write("SECRET")
    os.chmod(canary, 0o644)
    tcp, udp = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    unix, abstract = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    tcp.bind(("127.0.0.1", 0))
    udp.bind(("127.0.0.1", 0))
    unix.bind(os.path.join(dirs["public"], "sock"))
    os.chmod(os.path.join(dirs["public"], "sock"), 0o777)
    abstract.bind("\0" + sc.MARKER)
    for s in (tcp, unix, abstract):
        s.listen(8)
    for s in (tcp, udp, unix, abstract):
        s.setblocking(False)
    yield dict(dirs, root=root, canary=canary, tcp=tcp, udp=udp, unix=unix, abstract=abstract)
    for s in (tcp, udp, unix, abstract):
        s.close()
    shutil.rmtree(root)


def _arrived(world: dict) -> list[str]:
    got = []
    for name in ("tcp", "unix", "abstract"):
        try:
            world[name].accept()[0].close()
            got.append(name)
        except BlockingIOError:
            pass
    try:
        world["udp"].recv(8)
        got.append("udp")
    except BlockingIOError:
        pass
    return got


@pytest.mark.parametrize("config", list(CONFIGS))
def test_plain_mode_protects_its_supervisor(config, world):
    uid, python, landlock_max, nest = CONFIGS[config]
    if python is None:
        pytest.skip("no Python here that an unprivileged uid can run")
    if nest and ABI == 0:
        pytest.skip("no Landlock here to refuse")
    if ARCH is None and ABI < 6:
        pytest.skip(
            f"no seccomp filter and Landlock ABI {ABI} < 6: plain mode cannot scope signals"
        )
    escape = f"{tempfile.gettempdir()}/{sc.MARKER}_w"
    targets = [escape, f"{world['cwd']}/{sc.MARKER}_w", f"{world['runs']}/{sc.MARKER}_w"]
    jobs = {
        "signals": SIGNALS.format(tgkill=confine.SYSCALLS.get(ARCH or "x86_64")["tgkill"]),
        "kill_all": KILL_ALL,
        "writes": WRITES.format(targets=[*targets, f"../{sc.MARKER}_w"]),
        "read": READ.format(canary=world["canary"]),
        "network": NETWORK.format(
            tcp=world["tcp"].getsockname()[1],
            udp=world["udp"].getsockname()[1],
            unix=os.path.join(world["public"], "sock"),
            abstract="\0" + sc.MARKER,
        ),  # fmt: skip
        "escape": ESCAPE.format(marker=sc.MARKER),
    }
    spec = dict(uid=uid, repo=sc.readable_copy(world["root"], REPO), tmp_root=world["runs"])
    spec["landlock_max"] = landlock_max
    spec["nest_landlock"] = nest
    spec_path = os.path.join(world["root"], "spec.json")
    together = [["victim", VICTIM], ["attacker", ATTACKER]]
    with open(spec_path, "w") as f:
        json.dump(dict(spec, jobs=list(jobs.items()), together=together), f)
    os.chmod(spec_path, 0o644)
    proc = subprocess.Popen(
        [python, "-I", DRIVER, spec_path], cwd=world["cwd"], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    sc.SUPERVISORS.add(proc.pid)  # its runs' uids count for the `clean` fixture too
    stdout, stderr = proc.communicate(timeout=120)
    landed = [t for t in targets if os.path.exists(t)]
    for t in landed:
        os.remove(t)
    assert proc.returncode == 0 and stdout, (
        f"the supervisor died: {proc.returncode} {stderr[-2000:]}"
    )
    out = json.loads(stdout)
    res, iso = out["results"], out["isolation"]
    assert iso["mode"] == "plain" and out["uid"] == (uid if uid is not None else 0)
    assert out["sentinel_alive"], "kill(-1) reached a process of the supervisor's uid"
    sup, attempts = res["signals"]["stdout"].split(" ", 1)
    assert int(sup) == out["pid"], res["signals"]
    assert sorted(a.rsplit(":", 1)[1] for a in attempts.split()) == ["1"] * 8, attempts  # EPERM
    assert res["attacker"]["stdout"].strip() == "0", res["attacker"]  # no other process reached
    assert res["victim"]["stdout"].split() == ["up", "alive"], res["victim"]  # a concurrent run
    assert res["network"]["stdout"].strip() == "['pair']", res["network"]
    assert _arrived(world) == []
    assert res["escape"]["stdout"].strip() == "setsid:1", res["escape"]
    # the `clean` fixture then checks that the exec'd sleeper (named by the marker) is gone
    confined = landlock_max != 0 and not nest
    if confined:
        assert res["writes"]["stdout"].strip() == "0" and not landed, (res["writes"], landed)
        assert res["read"]["stdout"].strip() == "denied 13", res["read"]
        assert any(a.startswith("writes confined to its run folder") for a in iso["active"])
    else:  # the report says what is missing, and it really is
        assert res["writes"]["status"] == "ok" and int(res["writes"]["stdout"]) >= 1 and landed
        assert res["read"]["stdout"].strip() == "SECRET"
        assert any(m.startswith("writes confined to its run folder: NOT") for m in iso["missing"])
        assert any(
            m.startswith("reads limited to the system/Python dirs: NOT") for m in iso["missing"]
        )
        why = "landlock: set-up failed here" if nest else "capped at 0"
        assert any(why in layer for layer in iso["layers"]), iso["layers"]
    assert any(a.startswith("cannot signal the trainer") for a in iso["active"]), iso
    assert any(a.startswith("network blocked") for a in iso["active"]), iso
    if uid is None:
        assert any(a.startswith("runs as an unprivileged uid of its own") for a in iso["active"])
