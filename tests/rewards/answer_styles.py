"""Answer styles that real models write, on real test items, each with the reward a careful person
would give it (1.0 right, 0.1 a wrong answer clearly given, 0.0 no answer or garbage).

Items are ReFT's test files in ../shared/data/reft (``gsm8k_0``: 18, ``gsm8k_2``: 70000,
``gsm8k_489``: -10, ``svamp_3810``: 2436.0, ``mathqa_2``: c = 870, ``mathqa_0``: a = 38,
``mathqa_11``: e = 2240 with b and d both 2778, ``mathqa_24``: c = ``4 %``,
``mathqa-numeric_2198``: 5/12, ``_2940``: 0.01616, ``_1167``: 0.002, ``_39``: probability 0.15,
``_29``: "what percent", 50.0, ``_284``: 1/16). ``STYLES`` is read by ``test_answer_styles.py``
and by ``measure_readers.py``, which prints the share each reader gets right and the README's
table of styles.

One exception to "as a person would": a MathQA value that is no option (``The answer is 871``)
gets 0, reftlab's documented rule (only an option is a well-formed choice), not 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reftlab.data import Example, load_examples

# The test files the items come from, by data set: (file in reft/, data set name).
FILES = {
    "gsm8k": ("gsm8k_test_set.json", "gsm8k"),
    "svamp": ("svamp_test_set.json", "svamp"),
    "mathqa": ("mathqa_test_set.json", "mathqa"),
    "mathqa-numeric": ("mathqa-numeric_test_set.json", "mathqa_numeric"),
}


@dataclass(frozen=True)
class Style:
    name: str
    category: str
    item: str
    completion: str
    reward: float


def load_items(reft_dir: Path) -> dict[str, Example]:
    """Every test example of the four files, by id (``gsm8k_0``, ``mathqa_2``...)."""
    items = {}
    for file, dataset in FILES.values():
        items.update({e.id: e for e in load_examples(reft_dir / file, dataset)})
    return items


# gsm8k_0: 16 eggs, eats 3, bakes with 4, sells the rest at $2: 18 dollars.
JANET = (
    "Janet's ducks lay 16 eggs per day. She eats 3 for breakfast and bakes muffins with 4, "
    "so 16 - 3 - 4 = 9 eggs are left.\nShe sells them at $2 each, so she makes 9 * 2 = 18 dollars."
)
# mathqa_2: 28 stations between two cities, 30 in all: 30 * 29 = 870 tickets (c).
STATIONS = (
    "There are 28 + 2 = 30 stations.\nA ticket is needed for every ordered pair: 30 * 29 = 870."
)
# mathqa-numeric_2198: totals above 7 with two dice: 15 of 36 outcomes = 5/12.
DICE = (
    "Totals of 8 to 12 come up 5 + 4 + 3 + 2 + 1 = 15 ways out of 36, so the probability is 15/36."
)

# One style a line: the table reads better than the formatter's layout.
# fmt: off
STYLES: tuple[Style, ...] = (
    # The paper's and the data sets' own formats.
    Style("reft_nl", "paper", "gsm8k_0", JANET + "\nTherefore, the answer is: 18", 1.0),
    Style("reft_nl_choice", "paper", "mathqa_2", STATIONS + "\nTherefore, the answer is: c", 1.0),
    Style("reft_nl_svamp", "paper", "svamp_3810", "23 + 61 = 84\n84 * 29 = 2436\nTherefore, the answer is: 2436", 1.0),
    Style("reft_nl_wrong", "paper", "gsm8k_0", JANET + "\nTherefore, the answer is: 20", 0.1),
    Style("reftlab_angle", "paper", "gsm8k_0", JANET + " Therefore, the answer is <18>.", 1.0),
    Style("gsm8k_hashes", "paper", "gsm8k_0", "16 - 3 - 4 = <<16-3-4=9>>9\n9 * 2 = <<9*2=18>>18\n#### 18", 1.0),
    Style("answer_is", "paper", "gsm8k_0", JANET + " The answer is 18.", 1.0),
    Style("answer_is_choice_paren", "paper", "mathqa_2", STATIONS + " The answer is (c).", 1.0),
    # Numbers as models write them after the marker.
    Style("dollar_sign", "number", "gsm8k_0", JANET + " The answer is $18.", 1.0),
    Style("units_after", "number", "gsm8k_0", JANET + " The answer is 18 dollars.", 1.0),
    Style("thousands_commas", "number", "gsm8k_2", "The profit is 200,000 - 130,000. The answer is $70,000.", 1.0),
    Style("trailing_zeros", "number", "gsm8k_0", JANET + " The answer is 18.00", 1.0),
    Style("float_gold", "number", "svamp_3810", "84 * 29 = 2436. The answer is 2436", 1.0),
    Style("negative", "number", "gsm8k_489", "The answer is -10 degrees.", 1.0),
    Style("unicode_minus", "number", "gsm8k_489", "The answer is \u221210.", 1.0),
    Style("number_words", "number", "gsm8k_0", JANET + " The answer is eighteen.", 1.0),
    Style("marker_next_line", "number", "gsm8k_0", JANET + "\nThe answer is:\n\n18", 1.0),
    Style("wrong_number", "number", "gsm8k_0", JANET + " The answer is 20.", 0.1),
    Style("pleasantry_after", "number", "gsm8k_0", JANET + " The answer is $18.\n\nI hope this helps!", 1.0),
    Style("repeated_answer", "number", "gsm8k_0", "The answer is 18. The answer is 18. The answer is 18.", 1.0),
    # LaTeX around the answer.
    Style("boxed_after_marker", "latex", "gsm8k_0", JANET + " The answer is $\\boxed{18}$.", 1.0),
    Style("bare_boxed", "latex", "gsm8k_0", JANET + "\n\n\\boxed{18}", 1.0),
    Style("final_answer_boxed", "latex", "gsm8k_0", JANET + "\n\nThe final answer is $\\boxed{18}$", 1.0),
    Style("boxed_dollar", "latex", "gsm8k_0", JANET + "\n\\[\\boxed{\\$18}\\]", 1.0),
    Style("boxed_text_units", "latex", "gsm8k_0", JANET + " So $\\boxed{18 \\text{ dollars}}$.", 1.0),
    Style("latex_thousands", "latex", "gsm8k_2", "The answer is $70{,}000$.", 1.0),
    Style("latex_thin_space", "latex", "gsm8k_2", "The profit is $\\boxed{70\\,000}$.", 1.0),
    Style("inline_parens", "latex", "gsm8k_0", JANET + " The answer is \\(18\\).", 1.0),
    Style("latex_times", "latex", "gsm8k_0", "The answer is $9 \\times 2 = 18$.", 1.0),
    Style("latex_frac", "latex", "mathqa-numeric_2198", DICE + " The answer is $\\frac{5}{12}$.", 1.0),
    Style("boxed_dfrac", "latex", "mathqa-numeric_2198", DICE + "\n\\boxed{\\dfrac{5}{12}}", 1.0),
    Style("latex_frac_wrong", "latex", "mathqa-numeric_2198", "The answer is $\\frac{1}{3}$.", 0.1),
    Style("latex_percent", "latex", "mathqa-numeric_29", "The increase is half the new bonus: $\\boxed{50\\%}$", 1.0),
    Style("boxed_letter", "latex", "mathqa_2", STATIONS + " The answer is $\\boxed{C}$.", 1.0),
    Style("math_letter", "latex", "mathqa_2", STATIONS + " The answer is $C$.", 1.0),
    Style("parens_boxed_letter", "latex", "mathqa_2", STATIONS + "\n\\(\\boxed{C}\\)", 1.0),
    Style("textbf_letter", "latex", "mathqa_2", STATIONS + " The correct answer is \\textbf{(C)}.", 1.0),
    Style("boxed_letter_wrong", "latex", "mathqa_2", "The answer is $\\boxed{A}$.", 0.1),
    # Phrasings without the paper's marker.
    Style("answer_colon", "phrase", "gsm8k_0", JANET + "\nAnswer: 18", 1.0),
    Style("bold_final_answer", "phrase", "gsm8k_0", JANET + "\n\n**Final Answer:** 18", 1.0),
    Style("final_answer_colon", "phrase", "gsm8k_0", JANET + "\nFinal answer: 18", 1.0),
    Style("final_answer_heading", "phrase", "gsm8k_0", JANET + "\n\n## Final Answer\n18", 1.0),
    Style("answer_equals", "phrase", "gsm8k_0", JANET + "\nAnswer = 18", 1.0),
    Style("result_is", "phrase", "gsm8k_0", JANET + "\nSo the result is 18 dollars.", 1.0),
    Style("plain_conclusion", "phrase", "gsm8k_0", JANET + "\nSo Janet makes $18 every day at the market.", 1.0),
    Style("bold_number", "phrase", "gsm8k_0", "9 eggs at $2 each: she makes **$18** a day.", 1.0),
    Style("answer_to_question", "phrase", "gsm8k_0", JANET + " The answer to the question is 18.", 1.0),
    Style("json_answer", "phrase", "gsm8k_0", '{"reasoning": "16 - 3 - 4 = 9, 9 * 2 = 18", "answer": 18}', 1.0),
    Style("bullet_total", "phrase", "gsm8k_0", "- Eggs left: 16 - 3 - 4 = 9\n- Price: $2\n\nTotal: $18 per day.", 1.0),
    Style("bare_number", "phrase", "gsm8k_0", "18", 1.0),
    Style("final_answer_wrong", "phrase", "gsm8k_0", JANET + "\nFinal answer: 16", 0.1),
    # Choice letters, option values and option texts.
    Style("answer_colon_letter", "letter", "mathqa_0", "The profit without discount is 38%.\nAnswer: a", 1.0),
    Style("correct_option_is", "letter", "mathqa_2", STATIONS + " So the correct option is (A).", 0.1),
    Style("correct_option_right", "letter", "mathqa_2", STATIONS + " So the correct option is (C).", 1.0),
    Style("letter_is_correct", "letter", "mathqa_2", STATIONS + "\n(c) is the correct answer.", 1.0),
    Style("i_choose", "letter", "mathqa_2", STATIONS + " I choose (c).", 1.0),
    Style("option_word", "letter", "mathqa_2", STATIONS + " The answer is option C.", 1.0),
    Style("letter_period", "letter", "mathqa_2", STATIONS + " The answer is C.", 1.0),
    Style("letter_paren_text", "letter", "mathqa_2", STATIONS + " The answer is c ) 870", 1.0),
    Style("answer_letter_value", "letter", "mathqa_2", STATIONS + "\nAnswer: (C) 870", 1.0),
    Style("lone_letter_line", "letter", "mathqa_2", STATIONS + "\n\n(C)", 1.0),
    Style("hence_option", "letter", "mathqa_2", STATIONS + " Hence, option (c).", 1.0),
    Style("percent_option", "letter", "mathqa_24", "The rate is 4 percent. The answer is 4%.", 1.0),
    Style("value_for_option", "letter", "mathqa_2", STATIONS + " The answer is 870.", 1.0),
    Style("value_last_number", "letter", "mathqa_2", STATIONS + " So 870 tickets are printed.", 1.0),
    Style("value_not_an_option", "letter", "mathqa_2", "The answer is 871.", 0.0),
    Style("duplicate_options_gold", "letter", "mathqa_11", "The cost is 1600, so the price is 1600 * 1.4 = 2240. The answer is 2240.", 1.0),
    Style("duplicate_options_wrong", "letter", "mathqa_11", "The answer is 2778.", 0.1),
    Style("option_text", "letter", "mathqa_0", "The answer is 38.", 1.0),
    Style("wrong_letter", "letter", "mathqa_2", STATIONS + " The answer is (b).", 0.1),
    # Expressions after the marker and corrections.
    Style("expression_after_marker", "correction", "gsm8k_0", "The answer is: 9 * 2 = 18.", 1.0),
    Style("parenthesised_expression", "correction", "gsm8k_0", "The answer is (16 - 3 - 4) * 2 = 18.", 1.0),
    Style("value_then_expression", "correction", "gsm8k_0", "The answer is 18 (= 9 * 2).", 1.0),
    Style("isnt_its", "correction", "gsm8k_0", "The answer isn't 20, it's 18.", 1.0),
    Style("not_but", "correction", "gsm8k_0", "The answer is not 20 but 18.", 1.0),
    Style("wait_no", "correction", "gsm8k_0", "The answer is 20. Wait, no, it's 18.", 1.0),
    Style("wait_no_wrong", "correction", "gsm8k_0", "The answer is 18. Wait, no, it's 20.", 0.1),
    Style("restated_marker", "correction", "gsm8k_0", "The answer is 20.\nActually I forgot the muffins: 16 - 3 - 4 = 9 and 9 * 2 = 18. The answer is 18.", 1.0),
    Style("corrected_statement", "correction", "gsm8k_0", "The answer is 20. Hmm, that is wrong: 16 - 3 - 4 = 9 and 9 * 2 = 18. The correct answer is 18.", 1.0),
    Style("check_after_answer", "correction", "gsm8k_0", "The answer is 18.\nCheck: 18 / 2 = 9 eggs, and 9 + 3 + 4 = 16. Correct.", 1.0),
    Style("letter_correction", "correction", "mathqa_2", "The answer is (a). Wait, no, it's (c).", 1.0),
    Style("letter_negation", "correction", "mathqa_0", "The answer isn't c, it's a.", 1.0),
    Style("approximately", "correction", "mathqa-numeric_2198", DICE + " The answer is approximately 0.42.", 1.0),
    Style("fraction_then_decimal", "correction", "mathqa-numeric_2198", "The answer is 5/12 \u2248 0.4167.", 1.0),
    # Fractions, rounding and percentages, with golds as the data sets write them.
    Style("fraction", "tolerance", "mathqa-numeric_2198", DICE + " The answer is 5/12.", 1.0),
    Style("rounded_two_decimals", "tolerance", "mathqa-numeric_2198", "The answer is 0.42.", 1.0),
    Style("rounded_three_decimals", "tolerance", "mathqa-numeric_2198", "The answer is 0.417.", 1.0),
    Style("one_decimal", "tolerance", "mathqa-numeric_2198", "The answer is 0.4.", 0.1),
    Style("percent_for_probability", "tolerance", "mathqa-numeric_2198", DICE + " That is 41.67%.", 1.0),
    Style("percent_probability", "tolerance", "mathqa-numeric_39", "Half are women and 30% of them lawyers: 0.5 * 0.3. The answer is 15%.", 1.0),
    Style("fraction_probability", "tolerance", "mathqa-numeric_39", "The answer is 3/20.", 1.0),
    Style("percent_question", "tolerance", "mathqa-numeric_29", "The answer is 50%.", 1.0),
    Style("decimal_for_percent", "tolerance", "mathqa-numeric_29", "The answer is 0.5.", 0.1),
    Style("small_gold_exact", "tolerance", "mathqa-numeric_2940", "32.32 / 2000 = 0.01616. The answer is 0.01616.", 1.0),
    Style("small_gold_two_digits", "tolerance", "mathqa-numeric_2940", "The answer is 0.016.", 1.0),
    Style("small_gold_one_digit", "tolerance", "mathqa-numeric_2940", "The answer is 0.02.", 0.1),
    Style("tiny_gold_zero", "tolerance", "mathqa-numeric_1167", "The answer is 0.00.", 0.1),
    Style("tiny_gold_exact", "tolerance", "mathqa-numeric_1167", "5.25 / 250 - 2.99 / 130 = 0.021 - 0.023. The answer is $0.002.", 1.0),
    Style("sixteenth_fraction", "tolerance", "mathqa-numeric_284", "The answer is 1/16.", 1.0),
    Style("sixteenth_one_digit", "tolerance", "mathqa-numeric_284", "The answer is 0.06.", 0.1),
    # The model goes on after answering.
    Style("new_question_after", "continuation", "gsm8k_0", JANET + "\n\nQuestion: A robe takes 2 bolts of blue fiber. How many?\nAnswer: 2 + 1 = 3", 1.0),
    Style("new_question_marker", "continuation", "gsm8k_0", "The answer is 18.\nQuestion: John has 5 apples and eats 2. How many are left?\nThe answer is 3.", 1.0),
    # Garbage.
    Style("empty", "garbage", "gsm8k_0", "", 0.0),
    Style("no_numbers", "garbage", "gsm8k_0", "I am not sure how to solve this problem.", 0.0),
    Style("marker_nothing", "garbage", "gsm8k_0", "Let me think. The answer is", 0.0),
    Style("repetition_loop", "garbage", "gsm8k_0", "the the the the the the the the the the the the", 0.0),
    Style("letter_no_options", "garbage", "mathqa_2", "I cannot decide between the options.", 0.0),
    Style("question_echo", "garbage", "gsm8k_0", "Janet's ducks lay 16 eggs per day. She sells the remainder at $2 per egg. How much does she make?", 0.0),
)
# fmt: on
