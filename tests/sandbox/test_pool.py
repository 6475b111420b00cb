"""The pool runs programs correctly: values, statuses, output, order, isolation between runs."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from reftlab.sandbox import pool as pool_module
from reftlab.sandbox.pool import SandboxError, SandboxPool
from reftlab.sandbox.result import ExecResult


def run_one(pool: SandboxPool, body: str, **kwargs: float) -> ExecResult:
    (result,) = pool.run([f"def solution():\n{body}\n"], **kwargs)
    return result


@pytest.mark.parametrize(
    ("body", "value", "value_type"),
    [
        ("    return 29 * 7", "203", "int"),
        ("    return 10 / 4", "2.5", "float"),
        ("    return 1 / 3", "0.3333333333333333", "float"),
        ("    from fractions import Fraction\n    return Fraction(6, 8)", "3/4", "Fraction"),
        ("    from decimal import Decimal\n    return Decimal('1.10')", "1.10", "Decimal"),
        ("    return 'c'", "c", "str"),
        ("    return True", "True", "bool"),
        ("    return -(10 ** 30)", "-" + "1" + "0" * 30, "int"),
        ("    return float('inf')", "inf", "float"),
        # one-item containers stand for their item (sympy.solve returns a list)
        ("    return [18]", "18", "list"),
        ("    return {'x': 18}", "18", "dict"),
        ("    import sympy\n    return sympy.solve(sympy.Symbol('x') - 18)", "18", "list"),
        ("    import sympy\n    return sympy.sqrt(2)", "1.4142135623730951", "Pow"),
        ("    import numpy\n    return numpy.array([2.5])", "2.5", "ndarray"),
        (
            "    import datetime\n    return (datetime.date(2017, 7, 19) - datetime.date(2016, 12, 31)).days",
            "200",
            "int",
        ),
    ],
)
def test_return_values_come_back_as_plain_strings(
    pool: SandboxPool, body: str, value: str, value_type: str
) -> None:
    result = run_one(pool, body)
    assert (result.status, result.value, result.value_type) == ("ok", value, value_type)


@pytest.mark.parametrize(
    ("program", "status", "error"),
    [
        ("def solution():\n    return None", "no_result", "returned None"),
        ("def solution():\n    return [1, 2]", "no_result", "returned a list"),
        ("import sympy\ndef solution():\n    return sympy.Symbol('x') + 1", "no_result", "convert"),
        ("def solution():\n    return 10 ** 5000", "no_result", "cannot convert int"),
        ("def solution(:\n    return 1", "error", "SyntaxError"),
        ("x = 1", "error", "no solution() function"),
        ("def solution():\n    return 1 / 0", "error", "ZeroDivisionError"),
        ("def solution():\n    return input()", "error", "EOFError"),  # stdin is /dev/null
        ("import sqlite3\ndef solution():\n    return 1", "error", "Error"),  # not preloaded
    ],
)
def test_failures_have_a_status_and_a_message(
    pool: SandboxPool, program: str, status: str, error: str
) -> None:
    (result,) = pool.run([program])
    assert result.status == status and error in (result.error or "")


def test_blank_lines_inside_the_body_run(pool: SandboxPool) -> None:
    (result,) = pool.run(["def solution():\n    a = 2\n\n\n    b = 3\n    return a * b\n\n\n"])
    assert result.value == "6"


def test_results_come_back_in_input_order(pool: SandboxPool) -> None:
    # Varying run times make workers finish out of order.
    programs = [
        f"import time\ndef solution():\n    time.sleep({(i % 3) * 0.01})\n    return {i}"
        for i in range(30)
    ]
    assert [result.value for result in pool.run(programs)] == [str(i) for i in range(30)]
    assert pool.run([]) == []


def test_output_is_captured_and_truncated(pool: SandboxPool) -> None:
    result = run_one(
        pool, "    import os, sys\n    print('hi')\n    os.write(2, b'err')\n    return 1"
    )
    assert (result.stdout, result.stderr) == ("hi\n", "err")
    # 5 MB of output: kept to the pool's 8 KiB, dropped bytes counted, no slowdown to a timeout
    flood = run_one(pool, "    print('x' * (5 * 1024 * 1024))\n    return 7")
    assert flood.status == "ok" and flood.value == "7"
    assert flood.stdout.startswith("x" * 8192)
    assert f"[... {5 * 1024 * 1024 + 1 - 8192} more bytes dropped]" in flood.stdout


def test_programs_do_not_see_each_others_state(pool: SandboxPool) -> None:
    polluter = (
        "import math, builtins\ndef solution():\n    math.pi = 3\n    builtins.LEAK = 1\n"
        "    open('left_behind.txt', 'w').close()\n    return 1"
    )
    reader = (
        "import math, builtins, os\ndef solution():\n"
        "    return str((math.pi, hasattr(builtins, 'LEAK'), os.listdir('.')))"
    )
    # Run on both workers several times so that a reader follows a polluter on the same worker.
    results = pool.run([polluter, reader] * 4)
    assert {result.value for result in results[1::2]} == {"(3.141592653589793, False, [])"}


def test_working_directory_is_private_and_deleted(pool: SandboxPool) -> None:
    result = run_one(pool, "    import os\n    return os.getcwd()")
    assert result.status == "ok" and not os.path.exists(result.value)


def test_isolation_layers_on_this_machine(pool: SandboxPool) -> None:
    from reftlab.sandbox import landlock

    assert pool.isolation["landlock_abi"] == landlock.abi_version()
    if os.geteuid() == 0:
        assert pool.isolation["uid_drop"] and pool.isolation["network_namespace"]


def test_a_worker_killed_mid_program_is_replaced(pool: SandboxPool) -> None:
    results: list[ExecResult] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            pool.run(["import time\ndef solution():\n    time.sleep(0.9)\n    return 1"])
        )
    )
    thread.start()
    time.sleep(0.3)
    os.killpg(pool._workers[0].process.pid, signal.SIGKILL)
    thread.join(10)
    assert results[0].status == "crashed" and "worker died" in results[0].error
    assert [r.value for r in pool.run(["def solution():\n    return 5"] * 4)] == ["5"] * 4


def test_a_worker_that_stops_answering_is_replaced(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "_WORKER_GRACE_S", 0.3)
    results: list[ExecResult] = []
    thread = threading.Thread(
        target=lambda: results.extend(
            pool.run(["import time\ndef solution():\n    time.sleep(0.5)\n    return 1"])
        )
    )
    thread.start()
    time.sleep(0.2)
    os.kill(pool._workers[0].process.pid, signal.SIGSTOP)  # frozen: never answers
    thread.join(10)
    assert results[0].status == "timeout" and "stopped answering" in results[0].error
    assert [r.value for r in pool.run(["def solution():\n    return 5"] * 4)] == ["5"] * 4


def test_closing_stops_every_worker_and_removes_the_directory() -> None:
    sandbox = SandboxPool(workers=2)
    pids = [worker.process.pid for worker in sandbox._workers]
    base = sandbox._base_dir
    sandbox.close()
    sandbox.close()  # twice is fine
    assert not os.path.exists(base)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run(["def solution():\n    return 1"])


def test_bad_arguments_are_refused_with_their_value() -> None:
    with pytest.raises(ValueError, match="at least one worker, got 0"):
        SandboxPool(workers=0)
    with pytest.raises(ValueError, match="must be positive"):
        SandboxPool(timeout_s=0)


def test_an_interrupted_run_leaves_no_stale_answers(
    pool: SandboxPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = pool._receive

    def interrupt_once(*args: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt
        original(*args)

    monkeypatch.setattr(pool, "_receive", interrupt_once)
    stale = "import time\ndef solution():\n    time.sleep({})\n    return 'stale'"
    with pytest.raises(KeyboardInterrupt):
        pool.run([stale.format(0.01), stale.format(0.6)])
    monkeypatch.undo()
    # Without the clean-up, the fast worker finishes new jobs 0 and 1 before the slow worker's
    # stale answer for job 1 arrives and overwrites one of them.
    fresh = [f"def solution():\n    return {i}" for i in range(20)]
    assert [r.value for r in pool.run(fresh)] == [str(i) for i in range(20)]
