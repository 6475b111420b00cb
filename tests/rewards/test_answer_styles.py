"""The answer-style suites: every style on its real test item gets the reward a person gives it.

``answer_styles.STYLES`` (N-CoT) and ``program_styles.PROGRAM_STYLES`` (P-CoT) hold the
completions and the expected rewards; ``measure_readers.py`` prints the shares behind the
README's figures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reftlab.data import Example
from reftlab.rewards.programs import extract_program
from reftlab.rewards.score import score_natural, score_program
from reftlab.sandbox.pool import SandboxPool
from tests.rewards.answer_styles import STYLES, Style, load_items
from tests.rewards.program_styles import PROGRAM_STYLES

# Where the default reward is not the person's, and why; right/wrong still agrees.
KNOWN_DIFFERENCES = {
    # No answer is given, but the last-number fallback reads the question's $2: a wrong
    # answer (0.1) where a person sees none (0).
    "question_echo": 0.1,
}


@pytest.fixture(scope="module")
def items(shared_data: Path) -> dict[str, Example]:
    return load_items(shared_data / "reft")


def ids(styles: tuple[Style, ...]) -> list[str]:
    return [style.name for style in styles]


def test_the_suite_covers_the_styles_asked_for() -> None:
    assert len(STYLES) >= 60 and len(set(ids(STYLES))) == len(STYLES)
    categories = {style.category for style in STYLES}
    assert {"paper", "number", "latex", "phrase", "letter", "correction", "garbage"} <= categories
    assert {"tolerance", "continuation"} <= categories
    assert len(set(ids(PROGRAM_STYLES))) == len(PROGRAM_STYLES)


@pytest.mark.parametrize("style", STYLES, ids=ids(STYLES))
def test_default_reading(style: Style, items: dict[str, Example]) -> None:
    expected = KNOWN_DIFFERENCES.get(style.name, style.reward)
    assert score_natural(style.completion, items[style.item]).reward == expected


PAPER = tuple(style for style in STYLES if style.category == "paper")


@pytest.mark.parametrize("style", PAPER, ids=ids(PAPER))
def test_strict_reading_loses_nothing_on_the_paper_format(
    style: Style, items: dict[str, Example]
) -> None:
    strict = score_natural(style.completion, items[style.item], fallback="strict").reward
    assert strict == style.reward


@pytest.mark.parametrize(
    ("name", "strict"),
    [
        ("bare_boxed", 0.0),  # no marker
        ("answer_colon", 0.0),
        ("latex_frac", 0.0),  # "$\frac{5}{12}$" after the marker is no number
        ("latex_thousands", 0.1),  # "$70{,}000$" reads 70
        ("expression_after_marker", 0.1),  # "9 * 2 = 18" reads 9
        ("isnt_its", 0.0),  # "isn't" is the marker followed by no number
        ("wait_no", 0.1),  # "20. Wait, no, it's 18" reads 20
        ("wait_no_wrong", 1.0),  # "18. Wait, no, it's 20" reads 18: right by accident
        ("answer_is", 1.0),
    ],
)
def test_strict_reading_is_the_paper_format_only(
    name: str, strict: float, items: dict[str, Example]
) -> None:
    (style,) = [s for s in STYLES if s.name == name]
    assert score_natural(style.completion, items[style.item], fallback="strict").reward == strict


def test_defaults_agree_with_the_person_on_right_and_wrong(items: dict[str, Example]) -> None:
    agree = [
        (score_natural(s.completion, items[s.item]).reward == 1.0) == (s.reward == 1.0)
        for s in STYLES
    ]
    assert sum(agree) == len(STYLES)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    # 4 s instead of the default 10 s: the 3 s program still passes, the endless loop costs less.
    with SandboxPool(workers=2, timeout_s=4.0) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def program_rewards(pool: SandboxPool, items: dict[str, Example]) -> dict[str, float]:
    results = pool.run([extract_program(style.completion) for style in PROGRAM_STYLES])
    return {
        style.name: score_program(result, items[style.item]).reward
        for style, result in zip(PROGRAM_STYLES, results, strict=True)
    }


@pytest.mark.parametrize("style", PROGRAM_STYLES, ids=ids(PROGRAM_STYLES))
def test_program_styles(style: Style, program_rewards: dict[str, float]) -> None:
    assert program_rewards[style.name] == style.reward
