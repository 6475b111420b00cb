"""Prompt and target formatting shared by training and evaluation."""

from __future__ import annotations

import pytest

from reftlab.data import DEFAULT_TEMPLATES, DataError, Example, format_prompt, format_target

GSM = Example(
    id="g0",
    question="Tom has 2 apples and buys 3. How many?",
    answer="5",
    cot="2 + 3 = 5.\nThe answer is 5.",
    program="def solution():\n    return 2 + 3",
)
MATHQA = Example(
    id="m0",
    question="what is 10 % of 380 ?",
    answer="a",
    options={"a": "38", "b": "27.675", "c": "30"},
)


def test_default_natural_prompt_and_target():
    prompt = format_prompt(DEFAULT_TEMPLATES["natural"], GSM)
    assert prompt == "Question: Tom has 2 apples and buys 3. How many?\nAnswer:"
    assert prompt + format_target(GSM, "natural") == (
        "Question: Tom has 2 apples and buys 3. How many?\nAnswer: 2 + 3 = 5.\nThe answer is 5."
    )


def test_default_program_prompt_and_target():
    prompt = format_prompt(DEFAULT_TEMPLATES["program"], GSM)
    assert prompt == (
        "Question: Tom has 2 apples and buys 3. How many?\nWrite a Python program that solves it.\n"
    )
    assert format_target(GSM, "program") == "def solution():\n    return 2 + 3"


def test_options_placeholder():
    template = "Question: {question}\nOptions: {options}\nAnswer:"
    assert format_prompt(template, MATHQA) == (
        "Question: what is 10 % of 380 ?\nOptions: a ) 38 , b ) 27.675 , c ) 30\nAnswer:"
    )


def test_options_follow_the_question_when_template_has_no_placeholder():
    # ReFT's own MathQA layout: the options line right under the question.
    assert format_prompt("Q: {question}\nA:", MATHQA) == (
        "Q: what is 10 % of 380 ?\na ) 38 , b ) 27.675 , c ) 30\nA:"
    )


def test_braces_in_the_question_are_not_placeholders():
    example = Example(id="x", question="Is {question} a set {1, 2}?", answer="1")
    assert format_prompt("Q: {question}", example) == "Q: Is {question} a set {1, 2}?"


def test_unknown_placeholder_is_named():
    with pytest.raises(ValueError, match=r"unknown placeholder\(s\) \['answer'\]"):
        format_prompt("Q: {question} A: {answer}", GSM)
    with pytest.raises(ValueError, match="malformed prompt template"):
        format_prompt("Q: {question", GSM)


def test_target_without_solution_names_example():
    with pytest.raises(DataError, match=r"example 'm0' has no cot"):
        format_target(MATHQA, "natural")
    with pytest.raises(DataError, match=r"example 'm0' has no program"):
        format_target(MATHQA, "program")
    with pytest.raises(ValueError, match=r"unknown cot type 'latex'"):
        format_target(GSM, "latex")
