"""Code that runs inside the forked program process: exec, call, convert, report (stdlib only).

The conversion to a plain string happens here, inside the sandbox, so that the trainer never
calls a method of an object the program made; what leaves the process is JSON with strings.
"""

from __future__ import annotations

import builtins
import decimal
import fractions
import io
import json
import numbers
import os
import sys
from typing import NoReturn

from reftlab.sandbox import confine

RESULT_FD = 3
# Exit status of a program process whose confinement failed (the program never ran).
SETUP_FAILED_EXIT = 71
# A string answer longer than this is no answer; keep the frame small.
MAX_VALUE_CHARS = 1000


def convert_value(value: object) -> tuple[str, str | None, str, str | None]:
    """Turn a returned object into ``(status, value_text, type_name, error)``.

    int -> ``str``, float -> ``repr``, Fraction -> ``"p/q"``, Decimal -> ``str``, other real
    numbers (numpy and sympy scalars) through ``float``/``int``, str -> itself (truncated), bool
    -> ``"True"``/``"False"``; any other object that ``float()`` accepts (``sympy.sqrt(2)``, a
    one-element array) as that float. A container of one item (``sympy.solve`` gives ``[18]``
    or ``[{x: 18}]``) stands for that item. None, other containers and symbolic expressions give
    ``no_result``.
    """
    type_name = type(value).__name__
    try:
        value = _only_item(_only_item(value))
        if value is None:
            return "no_result", None, type_name, "solution() returned None"
        if isinstance(value, bool):
            return "ok", str(value), type_name, None
        if isinstance(value, str):
            return "ok", str.__str__(value)[:MAX_VALUE_CHARS], type_name, None
        if isinstance(value, fractions.Fraction):
            return "ok", f"{int(value.numerator)}/{int(value.denominator)}", type_name, None
        if isinstance(value, decimal.Decimal):
            return "ok", decimal.Decimal.__str__(value), type_name, None
        if isinstance(value, numbers.Integral):
            return "ok", int.__repr__(int(value)), type_name, None
        if isinstance(value, numbers.Real) or hasattr(type(value), "__float__"):
            return "ok", float.__repr__(float(value)), type_name, None  # type: ignore[arg-type]
    except (ValueError, OverflowError, TypeError, ArithmeticError) as exc:
        # e.g. an int with more digits than int-to-str conversion allows, or a symbolic value
        return "no_result", None, type_name, f"cannot convert {type_name}: {exc}"
    return "no_result", None, type_name, f"solution() returned a {type_name}, not a number or str"


def _only_item(value: object) -> object:
    """The one item of a one-item list, tuple, set or dict (its value); else ``value``."""
    if isinstance(value, (list, tuple, set, frozenset)) and len(value) == 1:
        return next(iter(value))
    if isinstance(value, dict) and len(value) == 1:
        return next(iter(value.values()))
    return value


def _describe(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:MAX_VALUE_CHARS]
    except BaseException:  # noqa: BLE001 - str() of a hostile exception may raise anything
        return type(exc).__name__


def _report(status: str, value: str | None, type_name: str | None, error: str | None) -> None:
    message = {"status": status, "value": value, "value_type": type_name, "error": error}
    # One JSON object per line; the worker keeps the last line, so bytes a program wrote to this
    # descriptor itself before returning cannot stand in for the real result.
    data = b"\n" + json.dumps(message, ensure_ascii=True).encode("ascii") + b"\n"
    view = memoryview(data)
    while view:
        view = view[os.write(RESULT_FD, view) :]


def _fresh_streams() -> None:
    """New sys.stdout/stderr on fds 1 and 2, so nothing buffered in the worker leaks in."""
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="replace"
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        write_through=True,
    )


def _flush_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the program may have replaced or closed them
            pass


def _call_solution(source: str, entry: str) -> tuple[str, str | None, str | None, str | None]:
    try:
        code = compile(source, "<program>", "exec")
        namespace: dict = {"__name__": "__sandbox__", "__builtins__": builtins}
        exec(code, namespace)  # noqa: S102 - this process is the sandbox
        function = namespace.get(entry)
        if not callable(function):
            return "error", None, None, f"the program defines no {entry}() function"
        return convert_value(function())
    except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError are results too
        return "error", None, None, _describe(exc)


def run_program(
    source: str,
    entry: str,
    workdir: str,
    uid: int | None,
    limits: confine.ProgramLimits,
    landlock_abi: int,
    fds: tuple[int, int, int],
) -> NoReturn:
    """Body of the forked child: confine, run ``entry()``, write one JSON result, exit.

    ``fds`` are the write ends of the stdout, stderr and result pipes.
    """
    try:
        os.setsid()
        confine.redirect_fds(*fds)
    except BaseException:  # noqa: BLE001 - without the result pipe in place there is no report
        os._exit(SETUP_FAILED_EXIT)
    try:
        confine.confine_program(workdir, uid, limits, landlock_abi)
    except BaseException as exc:  # noqa: BLE001 - fail closed: never run unconfined
        try:
            _report("crashed", None, None, f"sandbox setup failed: {_describe(exc)}")
        finally:
            os._exit(SETUP_FAILED_EXIT)
    try:
        _fresh_streams()
        outcome = _call_solution(source, entry)
        _flush_streams()
        _report(*outcome)
    finally:
        os._exit(0)
