"""Programs (P-CoT) in the styles real models write, on real test items, each with the reward a
careful person would give it: 1.0 when running it gives the answer, 0.1 when it runs and returns
a wrong answer, 0.0 when it fails, hangs, attacks the machine or returns nothing usable.

Items as in ``answer_styles``: ``gsm8k_0`` (18), ``svamp_3810`` (2436.0), ``mathqa_2`` (c = 870),
``mathqa-numeric_2198`` (5/12).
"""

from __future__ import annotations

from tests.rewards.answer_styles import Style

BODY = "    eggs = 16 - 3 - 4\n    money = eggs * 2\n"

# One style a line: the table reads better than the formatter's layout.
# fmt: off
PROGRAM_STYLES: tuple[Style, ...] = (
    Style("returns_int", "number", "gsm8k_0", "def solution():\n" + BODY + "    return money\n", 1.0),
    Style("returns_float", "number", "gsm8k_0", "def solution():\n" + BODY + "    return money / 1.0\n", 1.0),
    Style("returns_wrong", "number", "gsm8k_0", "def solution():\n    return 16 * 2\n", 0.1),
    Style("float_gold", "number", "svamp_3810", "def solution():\n    return (23 + 61) * 29\n", 1.0),
    Style("docstring_blank_lines", "number", "gsm8k_0", 'def solution():\n    """Janet\'s ducks."""\n\n    eggs = 16 - 3 - 4\n\n    return eggs * 2\n', 1.0),
    Style("top_level_import", "number", "gsm8k_0", "import math\n\ndef solution():\n    return math.prod([9, 2])\n", 1.0),
    Style("text_after_program", "number", "gsm8k_0", "def solution():\n" + BODY + "    return money\n\nThe program returns 18.\n", 1.0),
    Style("returns_string_number", "number", "gsm8k_0", "def solution():\n    return '18'\n", 1.0),
    Style("returns_string_units", "number", "gsm8k_0", "def solution():\n    return f'{9 * 2} dollars'\n", 1.0),
    Style("returns_fstring_dollar", "number", "gsm8k_0", "def solution():\n    return f'${9 * 2}'\n", 1.0),
    Style("returns_fraction", "number", "mathqa-numeric_2198", "from fractions import Fraction\ndef solution():\n    return Fraction(15, 36)\n", 1.0),
    Style("returns_rounded", "number", "mathqa-numeric_2198", "def solution():\n    return round(15 / 36, 2)\n", 1.0),
    Style("sympy_solve", "library", "gsm8k_0", "import sympy\ndef solution():\n    x = sympy.symbols('x')\n    return sympy.solve(x / 2 - 9, x)[0]\n", 1.0),
    Style("sympy_solve_list", "library", "gsm8k_0", "from sympy import symbols, Eq, solve\ndef solution():\n    x = symbols('x')\n    return solve(Eq(x - 9, 9), x)\n", 1.0),
    Style("sympy_rational", "library", "mathqa-numeric_2198", "from sympy import Rational\ndef solution():\n    return Rational(15, 36)\n", 1.0),
    Style("sympy_simplify", "library", "gsm8k_0", "import sympy\ndef solution():\n    x = sympy.symbols('x')\n    return sympy.simplify((x**2 - 81) / (x - 9)).subs(x, 9)\n", 1.0),
    Style("sympy_sqrt", "library", "gsm8k_0", "import sympy\ndef solution():\n    return sympy.sqrt(324)\n", 1.0),
    Style("numpy_sum", "library", "gsm8k_0", "import numpy as np\ndef solution():\n    return np.sum(np.array([9, 9]))\n", 1.0),
    Style("numpy_linalg", "library", "gsm8k_0", "import numpy as np\ndef solution():\n    a = np.array([[1.0, 1.0], [1.0, -1.0]])\n    return np.linalg.solve(a, np.array([27.0, 9.0]))[0]\n", 1.0),
    Style("numpy_matmul", "library", "gsm8k_0", "import numpy as np\ndef solution():\n    a = np.full((300, 300), 0.1)\n    return round(float((a @ a)[0, 0]) * 6, 6)\n", 1.0),
    Style("datetime", "library", "gsm8k_0", "import datetime\ndef solution():\n    return (datetime.date(2024, 3, 19) - datetime.date(2024, 3, 1)).days\n", 1.0),
    Style("slow_three_seconds", "library", "gsm8k_0", "import time\ndef solution():\n    time.sleep(3)\n    return 18\n", 1.0),
    Style("returns_letter", "choice", "mathqa_2", "def solution():\n    n = 28 + 2\n    return 'c' if n * (n - 1) == 870 else 'a'\n", 1.0),
    Style("returns_option_value", "choice", "mathqa_2", "def solution():\n    n = 30\n    return n * (n - 1)\n", 1.0),
    Style("returns_wrong_letter", "choice", "mathqa_2", "def solution():\n    return '(b)'\n", 0.1),
    Style("prints_only", "failure", "gsm8k_0", "def solution():\n    print(18)\n", 0.0),
    Style("no_solution", "failure", "gsm8k_0", "answer = 18\n", 0.0),
    Style("syntax_error", "failure", "gsm8k_0", "def solution(:\n    return 18\n", 0.0),
    Style("division_by_zero", "failure", "gsm8k_0", "def solution():\n    return 18 / 0\n", 0.0),
    Style("returns_nan", "failure", "gsm8k_0", "def solution():\n    return float('nan')\n", 0.0),
    Style("returns_bool", "failure", "gsm8k_0", "def solution():\n    return True\n", 0.0),
    Style("sys_exit", "failure", "gsm8k_0", "import sys\ndef solution():\n    sys.exit(18)\n", 0.0),
    Style("infinite_loop", "failure", "gsm8k_0", "def solution():\n    while True:\n        pass\n", 0.0),
    Style("blocked_import", "failure", "gsm8k_0", "import pandas\ndef solution():\n    return 18\n", 0.0),
    Style("memory_bomb", "failure", "gsm8k_0", "def solution():\n    x = [0] * 10**10\n    return 18\n", 0.0),
    Style("fork_bomb", "failure", "gsm8k_0", "import os\ndef solution():\n    os.fork()\n    return 18\n", 0.0),
    Style("delete_files", "failure", "gsm8k_0", "import os\ndef solution():\n    os.remove('/etc/hostname')\n    return 18\n", 0.0),
    Style("symbolic_result", "failure", "gsm8k_0", "import sympy\ndef solution():\n    x = sympy.symbols('x')\n    return x + 18\n", 0.0),
)
# fmt: on
