"""How often each answer reader agrees with the human verdicts of ``answer_styles.STYLES``.

    PYTHONPATH=src python -m tests.rewards.measure_readers [--by-category | --table]

Readers: reftlab with each ``cot.answer_fallback`` (``last_number``, the default; ``none``;
``strict``, the paper's format) and, when it is installed (``pip install math-verify``),
math-verify alone (``parse`` then ``verify`` against the gold, as its README shows). Each is
scored two ways: *right/wrong* (the reward is 1 exactly when the person's is), the measure of
issue 13's held-out suite, and *exact reward* (1 / 0.1 / 0 all equal). ``--table`` prints the
README's table of styles instead; ``--by-category`` adds the shares per kind of style.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path

from reftlab.data import Example
from reftlab.rewards.score import score_natural
from tests.rewards.answer_styles import STYLES, Style, load_items

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "reft"
Reader = Callable[[str, Example], float]


@cache
def items() -> dict[str, Example]:
    return load_items(DATA)


def item(style: Style) -> Example:
    return items()[style.item]


def reftlab_reader(fallback: str) -> Reader:
    return lambda completion, example: score_natural(completion, example, fallback=fallback).reward


def math_verify_reader() -> Reader | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        return None

    def read(completion: str, example: Example) -> float:
        predicted = parse(completion)
        if not predicted:
            return 0.0
        return 1.0 if verify(parse(example.answer), predicted) else 0.1

    return read


def agreement(reader: Reader, styles: tuple[Style, ...] = STYLES) -> tuple[float, float, list[str]]:
    """Share right/wrong as the person said, share with the exact reward, the styles missed."""
    rewards = [(reader(s.completion, item(s)), s) for s in styles]
    right = [(r == 1.0) == (s.reward == 1.0) for r, s in rewards]
    exact = [abs(r - s.reward) < 1e-9 for r, s in rewards]
    missed = [s.name for ok, (_, s) in zip(right, rewards, strict=True) if not ok]
    return sum(right) / len(styles), sum(exact) / len(styles), missed


def by_category(readers: dict[str, Reader]) -> str:
    """Right/wrong agreement per category of style, and on the numeric items alone."""
    groups = {
        c: tuple(s for s in STYLES if s.category == c)
        for c in dict.fromkeys(s.category for s in STYLES)
    }
    groups["numeric items"] = tuple(s for s in STYLES if not item(s).options)
    lines = ["| styles | n | " + " | ".join(readers) + " |", "|---|---|" + "---|" * len(readers)]
    for name, styles in groups.items():
        shares = [f"{agreement(r, styles)[0]:.0%}" for r in readers.values()]
        lines.append(f"| {name} | {len(styles)} | " + " | ".join(shares) + " |")
    return "\n".join(lines)


def table() -> str:
    """The README's table: one row per style, its example and what each reading gives."""
    lines = [
        "| style | kind | item (gold) | end of the completion | person | default | strict |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in STYLES:
        example = item(s)
        tail = s.completion.strip().split("\n")[-1][-60:].replace("|", "\\|") or "(empty)"
        default = score_natural(s.completion, example).reward
        strict = score_natural(s.completion, example, fallback="strict").reward
        gold = f"{s.item} ({example.answer})"
        lines.append(
            f"| {s.name} | {s.category} | {gold} | `{tail}` | {s.reward:g} | {default:g} "
            f"| {strict:g} |"
        )
    return "\n".join(lines)


def main() -> None:
    if "--table" in sys.argv:
        print(table())
        return
    readers: dict[str, Reader | None] = {
        "reftlab, defaults (last_number)": reftlab_reader("last_number"),
        "reftlab, answer_fallback=none": reftlab_reader("none"),
        "reftlab, answer_fallback=strict": reftlab_reader("strict"),
        "math-verify alone": math_verify_reader(),
    }
    print(f"{len(STYLES)} completions in {len({s.name for s in STYLES})} styles")
    for name, reader in readers.items():
        if reader is None:
            print(f"{name:34} not installed")
            continue
        right, exact, missed = agreement(reader)
        print(f"{name:34} right/wrong {right:6.1%}  exact reward {exact:6.1%}  missed: {missed}")
    if "--by-category" in sys.argv:
        print(by_category({k: v for k, v in readers.items() if v is not None}))


if __name__ == "__main__":
    main()
