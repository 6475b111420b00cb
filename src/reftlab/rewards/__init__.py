"""Answer extraction, answer comparison and partial-credit rewards (pure: strings in, values out).

Programs are executed through a ``RunPrograms`` callable (``reftlab.sandbox``), so everything
here can be tested without processes.
"""

from reftlab.rewards.choices import Choice, extract_choice, letters_for_value, option_value
from reftlab.rewards.extract import DEFAULT_MARKERS, FALLBACKS, extract_number
from reftlab.rewards.hacking import HackingReport, check_choice_hacking
from reftlab.rewards.numbers import WrittenNumber, find_numbers, numbers_match, parse_number
from reftlab.rewards.programs import extract_program
from reftlab.rewards.score import (
    DEFAULT_PARTIAL_REWARD,
    Score,
    score_natural,
    score_program,
)

__all__ = [
    "DEFAULT_MARKERS",
    "DEFAULT_PARTIAL_REWARD",
    "FALLBACKS",
    "Choice",
    "HackingReport",
    "Score",
    "WrittenNumber",
    "check_choice_hacking",
    "extract_choice",
    "extract_number",
    "extract_program",
    "find_numbers",
    "letters_for_value",
    "numbers_match",
    "option_value",
    "parse_number",
    "score_natural",
    "score_program",
]
