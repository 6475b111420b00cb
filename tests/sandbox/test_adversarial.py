"""Hostile programs are contained: reward 0, trainer and files intact, the pool still serving.

Each attack returns the gold answer 42 only if it succeeded, so "contained" means its reward
under the real scoring function is 0, and a normal program runs right after it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reftlab.data.records import Example
from reftlab.rewards.score import score_program
from reftlab.sandbox.pool import DEFAULT_PRELOAD, SandboxPool
from reftlab.sandbox.result import ExecResult

GOLD = Example(id="attack", question="?", answer="42")
SRC = Path(__file__).resolve().parents[2] / "src"
NORMAL = "def solution():\n    return 6 * 7"


def attack(pool: SandboxPool, body: str, timeout_s: float | None = None) -> ExecResult:
    """Run ``body`` as solution()'s body, check its reward is 0 and the pool still serves."""
    program = "import os, sys, signal, socket\ndef solution():\n" + textwrap.indent(
        textwrap.dedent(body), "    "
    )
    result, after = pool.run([program, NORMAL], timeout_s=timeout_s)
    assert score_program(result, GOLD).reward == 0.0, result
    assert (after.status, after.value) == ("ok", "42")
    assert pool.run([NORMAL] * 2)[1].value == "42"
    return result


def layers(pool: SandboxPool) -> tuple[bool, int, bool]:
    isolation = pool.isolation
    return isolation["uid_drop"], isolation["landlock_abi"], isolation["network_namespace"]


def test_infinite_loop_times_out(pool: SandboxPool) -> None:
    start = time.monotonic()
    result = attack(pool, "while True:\n    pass\nreturn 42", timeout_s=0.5)
    assert result.status == "timeout"
    assert time.monotonic() - start < 3.0


def test_sleeping_past_the_limit_times_out(pool: SandboxPool) -> None:
    result = attack(pool, "import time\ntime.sleep(30)\nreturn 42", timeout_s=0.3)
    assert result.status == "timeout" and "wall-clock" in result.error


def test_ignoring_signals_does_not_help(pool: SandboxPool) -> None:
    # The wall clock ends it with SIGKILL; the CPU limit (ceil(timeout) + 1 s) is only a
    # backstop for a worker that could not enforce the clock.
    body = (
        "for sig in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):\n"
        "    signal.signal(sig, signal.SIG_IGN)\nwhile True:\n    pass"
    )
    assert attack(pool, body, timeout_s=0.5).status == "timeout"


def test_program_sees_its_limits(pool: SandboxPool) -> None:
    program = (
        "import resource as r\ndef solution():\n"
        "    return str([r.getrlimit(k) for k in (r.RLIMIT_CPU, r.RLIMIT_FSIZE, r.RLIMIT_NPROC,"
        " r.RLIMIT_CORE, r.RLIMIT_NOFILE)])"
    )
    (result,) = pool.run([program], timeout_s=1.5)  # CPU limit: ceil(1.5) + 1 = 3 s, hard 4
    assert result.value == "[(3, 4), (0, 0), (1, 1), (0, 0), (64, 64)]"


@pytest.mark.parametrize(
    "body",
    [
        "x = bytearray(8 * 1024 ** 3)\nreturn 42",
        "x = [0] * (10 ** 10)\nreturn 42",
        "x = []\nwhile True:\n    x.append(bytearray(10 ** 7))",
        "x = []\nwhile True:\n    x.append(' ' * 10 ** 6)",
    ],
)
def test_memory_bombs_hit_the_address_space_limit(body: str) -> None:
    # A small limit, so that bombs that touch every page (slow) still hit it before the clock.
    preload = (*DEFAULT_PRELOAD, "socket")
    with SandboxPool(workers=1, timeout_s=5.0, memory_mb=256, preload=preload) as small:
        result = attack(small, body)
    assert result.status == "error" and "MemoryError" in result.error


def test_fork_bomb_cannot_fork(pool: SandboxPool) -> None:
    uid_drop, _, _ = layers(pool)
    if not uid_drop and os.geteuid() == 0:
        pytest.skip("RLIMIT_NPROC is not enforced for root and no uid drop is available")
    result = attack(pool, "while True:\n    os.fork()")
    assert result.status == "error" and "Resource temporarily unavailable" in result.error
    thread = attack(pool, "import threading\nthreading.Thread(target=print).start()\nreturn 42")
    assert thread.status == "error"
    # os.system reports a failed fork as -1 instead of raising: 42 only if a shell really ran.
    shell = attack(pool, "return 42 if os.system('true') == 0 else None")
    assert shell.status == "no_result"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ("def f(n):\n    return f(n + 1) + 1\nreturn f(0)", "error"),  # RecursionError
        # A raised limit: Python frames grow on the heap until the memory or time limit.
        (
            "sys.setrecursionlimit(10 ** 8)\ndef f(n):\n    return f(n + 1) + 1\nreturn f(0)",
            ("error", "timeout", "crashed"),
        ),
        # C-level recursion through repr of a deeply nested list overflows the C stack.
        (
            "sys.setrecursionlimit(10 ** 8)\nx = []\nfor _ in range(10 ** 6):\n    x = [x]\nreturn repr(x)",
            ("error", "timeout", "crashed"),
        ),
    ],
)
def test_deep_recursion_is_contained(pool: SandboxPool, body: str, status) -> None:
    result = attack(pool, body, timeout_s=1.0)
    assert result.status in (status if isinstance(status, tuple) else (status,))


def test_exits_are_contained(pool: SandboxPool) -> None:
    assert attack(pool, "sys.exit(42)").status == "error"
    assert attack(pool, "raise SystemExit(0)").status == "error"
    assert attack(pool, "os._exit(0)").status == "no_result"
    killed = attack(pool, "os.kill(os.getpid(), signal.SIGKILL)")
    assert killed.status == "crashed" and "SIGKILL" in killed.error
    segv = attack(pool, "os.kill(os.getpid(), signal.SIGSEGV)")
    assert segv.status == "crashed" and "SIGSEGV" in segv.error


def test_signals_cannot_reach_the_worker_or_the_trainer(pool: SandboxPool) -> None:
    uid_drop, abi, _ = layers(pool)
    if not uid_drop and abi < 6:
        pytest.skip("neither a uid drop nor Landlock signal scoping (Linux >= 6.12)")
    worker_pids = [worker.process.pid for worker in pool._workers]
    for body in [
        "os.kill(os.getppid(), signal.SIGKILL)\nreturn 42",
        "os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)\nreturn 42",
        f"os.kill({os.getpid()}, signal.SIGKILL)\nreturn 42",  # this test process
        f"os.killpg({os.getpgid(0)}, signal.SIGKILL)\nreturn 42",
    ]:
        assert attack(pool, body).status == "error"  # PermissionError
    # kill(-1) reaches every process the program may signal: none but itself.
    attack(pool, "os.kill(-1, signal.SIGKILL)\nreturn None")
    assert [worker.process.pid for worker in pool._workers] == worker_pids


def test_kill_everything_does_not_disturb_neighbours(pool: SandboxPool) -> None:
    sleeper = "import time\ndef solution():\n    time.sleep(0.3)\n    return 42"
    killer = "import os, signal, time\ndef solution():\n    time.sleep(0.1)\n    os.kill(-1, 9)\n    return 0"
    results = pool.run([sleeper, killer] * 2)
    assert [result.value for result in results[0::2]] == ["42", "42"]


@pytest.fixture
def victims() -> Iterator[dict[str, Path]]:
    """Files a program must not touch: one in a normal directory, one world-writable."""
    with tempfile.TemporaryDirectory() as root:
        plain, open_dir = Path(root, "plain"), Path(root, "open")
        plain.mkdir(mode=0o755)
        open_dir.mkdir()
        open_dir.chmod(0o777)  # no sticky bit: file permissions alone would not stop a delete
        Path(root).chmod(0o755)
        files = {"plain": plain / "victim.txt", "open": open_dir / "victim.txt"}
        for path in files.values():
            path.write_text("keep")
        files["open"].chmod(0o666)
        yield files
        for path in files.values():
            assert path.read_text() == "keep"


@pytest.mark.parametrize(
    "body",
    [
        "open({path!r}, 'w').write('pwned')\nreturn 42",
        "with open({path!r}, 'a') as f:\n    f.write('pwned')\nreturn 42",
        "os.truncate({path!r}, 0)\nreturn 42",
        "os.remove({path!r})\nreturn 42",
        "os.rename({path!r}, {path!r} + '.moved')\nreturn 42",
        "os.chmod({path!r}, 0)\nreturn 42",
        "os.symlink('/etc/passwd', {path!r} + '.link')\nreturn 42",
        "open({path!r} + '.new', 'w').close()\nreturn 42",
        "return len(open({path!r}).read()) + 38",  # reading it is denied too (Landlock)
    ],
)
@pytest.mark.parametrize("where", ["plain", "open"])
def test_files_outside_the_sandbox_survive(
    pool: SandboxPool, victims: dict[str, Path], body: str, where: str
) -> None:
    uid_drop, abi, _ = layers(pool)
    if abi == 0 and (where == "open" or not uid_drop):
        pytest.skip("world-writable files are protected by Landlock only (Linux >= 5.13)")
    if abi == 0 and "read()" in body:
        pytest.skip("reads are restricted by Landlock only")
    path = str(victims[where])
    result = attack(pool, body.format(path=path))
    assert result.status == "error"
    assert sorted(os.listdir(os.path.dirname(path))) == ["victim.txt"]


def test_writes_in_its_own_directory_fail_too(pool: SandboxPool) -> None:
    # RLIMIT_FSIZE=0: not a byte can be written to any file, even in the program's directory.
    result = attack(pool, "with open('scratch.txt', 'w') as f:\n    f.write('x')\nreturn 42")
    assert result.status == "error" and "File too large" in result.error


def test_network_is_unreachable(pool: SandboxPool) -> None:
    uid_drop, abi, netns = layers(pool)
    if not netns and abi < 4:
        pytest.skip("neither a network namespace nor Landlock TCP rules (Linux >= 6.7)")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        tcp = f"socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\nreturn 42"
        assert attack(pool, tcp).status == "error"
        outside = "socket.create_connection(('1.1.1.1', 53), timeout=0.5)\nreturn 42"
        assert attack(pool, outside).status == "error"
        bind = "s = socket.socket()\ns.bind(('0.0.0.0', 8080))\ns.listen()\nreturn 42"
        assert attack(pool, bind).status == "error" or not netns
    if netns:
        udp = (
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.sendto(b'x', ('127.0.0.1', {port}))\nreturn 42"
        )
        assert attack(pool, udp).status == "error"


def test_abstract_unix_socket_of_the_trainer_is_unreachable(pool: SandboxPool) -> None:
    _, abi, netns = layers(pool)
    if not netns and abi < 6:
        pytest.skip("abstract sockets are scoped by a netns or Landlock ABI 6")
    name = f"\0reftlab-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(name)
        server.listen()
        body = f"s = socket.socket(socket.AF_UNIX)\ns.connect({name!r})\nreturn 42"
        assert attack(pool, body).status == "error"


TRAINER = """
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[1])
from reftlab.sandbox.pool import DEFAULT_PRELOAD, SandboxPool
secret = os.environ["REFTLAB_TEST_SECRET"]
probe = '''
import os
def solution():
    found = [k for k, v in os.environ.items() if "hunter2" in v]
    for pid in (os.getppid(), TRAINER_PID):
        try:
            if b"hunter2" in open(f"/proc/{pid}/environ", "rb").read():
                found.append(pid)
        except OSError:
            pass
    try:
        pids = os.listdir("/proc")
    except OSError:
        pids = []
    for pid in pids:
        try:
            if b"hunter2" in open(f"/proc/{pid}/environ", "rb").read():
                found.append(pid)
        except OSError:
            pass
    return len(found)
'''.replace("TRAINER_PID", str(os.getpid()))
kill = f"import os\\ndef solution():\\n    os.kill({os.getpid()}, 9)\\n    return 1"
with SandboxPool(workers=1) as pool:
    results = pool.run([probe, kill, probe])
    print(json.dumps([[r.status, r.value] for r in results]), flush=True)
"""


def test_secrets_in_the_trainer_environment_are_invisible() -> None:
    """A separate trainer process holds a secret in its environment from exec time on."""
    env = {**os.environ, "REFTLAB_TEST_SECRET": "hunter2"}
    completed = subprocess.run(
        [sys.executable, "-c", TRAINER, str(SRC)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr  # the trainer was not killed
    probe, kill, probe_again = json.loads(completed.stdout)
    assert probe == ["ok", "0"] and probe_again == ["ok", "0"]
    assert kill[0] == "error"


ORPHAN_CHECK = """
import os, sys, threading
sys.path.insert(0, sys.argv[1])
from reftlab.sandbox.pool import DEFAULT_PRELOAD, SandboxPool
pool = SandboxPool(workers=2)
print(pool._base_dir, " ".join(str(w.process.pid) for w in pool._workers), flush=True)
os.kill(os.getpid(), 9)  # die without any cleanup
"""


def test_workers_exit_when_the_trainer_is_killed() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", ORPHAN_CHECK, str(SRC)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    base_dir, *pids_text = completed.stdout.split()
    shutil.rmtree(base_dir)  # a killed trainer cannot remove its pool directory itself
    pids = [int(pid) for pid in pids_text]
    assert completed.returncode == -signal.SIGKILL and len(pids) == 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.05)
    # Reaped by init or gone: either way no worker is left running.
    alive = [
        pid
        for pid in pids
        if Path(f"/proc/{pid}/status").exists()
        and "zombie" not in Path(f"/proc/{pid}/status").read_text()
    ]
    assert alive == []


def test_workers_started_in_a_short_lived_thread_survive_it() -> None:
    pools: list[SandboxPool] = []
    thread = threading.Thread(target=lambda: pools.append(SandboxPool(workers=2)))
    thread.start()
    thread.join()
    time.sleep(0.2)
    with pools[0] as sandbox:
        assert [r.value for r in sandbox.run([NORMAL] * 4)] == ["42"] * 4
