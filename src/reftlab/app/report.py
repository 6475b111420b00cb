"""`reftlab report PATH [--out DIR]`: the command line over `reftlab.report`.

Prints the results table of a run or sweep dir and writes report.csv, report.md and the plots;
fails in one line when PATH holds no run or the report cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reftlab.app.io import asks_for_help
from reftlab.errors import ReftlabError

REPORT_USAGE = """\
usage: reftlab report PATH [--out DIR]

Results of a run dir, or of every run dir below PATH (a sweep's multirun/DATE/TIME/, or any
folder of runs): one row per run with method, cot, dataset, model, the swept knobs, test and
warm-up accuracy, voting/pass@k/rerank accuracy when evaluated, wall time, samples drawn and a
status: done (summary.json), partial (metrics but no summary: where it stopped) or failed (why).

Prints the table and writes report.csv (accuracies as fractions), report.md and plots:
curves.png (training reward and eval accuracy against step), and test accuracy against the
swept knobs (accuracy_heatmap.png for two knobs, accuracy_by_knob.png otherwise). The runs of
a paper preset (reftlab -m +experiment=NAME) also get the paper's own table, its claims beside
what the runs measured, and its plot (ablations.png, reward_vs_samples.png).

  PATH       a run dir (holds config.yaml or .hydra/config.yaml) or a folder above run dirs
  --out DIR  where the files go (default: PATH)
"""


class _ReportArgs(argparse.ArgumentParser):
    """argparse that ends a usage error in one line (``ReftlabError``) instead of two."""

    def error(self, message: str):
        raise ReftlabError(f"{message}; see reftlab report --help")


def report(argv: Sequence[str]) -> int:
    """Results table, report.csv, report.md and plots of a run or sweep dir (``REPORT_USAGE``)."""
    if asks_for_help(argv):
        print(REPORT_USAGE, end="")
        return 0
    from reftlab.report import format_report, make_report

    parser = _ReportArgs(prog="reftlab report", add_help=False)
    parser.add_argument("path", type=Path, metavar="PATH")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(list(argv))
    result = make_report(args.path.expanduser(), args.out.expanduser() if args.out else None)
    print(format_report(result))
    sys.stdout.flush()
    return 0
