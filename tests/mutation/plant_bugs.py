"""Plant known bugs in the RL math, one at a time, and check that the fast tests catch each.

A standalone script, run by hand (pytest does not collect it: its name has no ``test_``)::

    python tests/mutation/plant_bugs.py                      # every mutant, Markdown table
    python tests/mutation/plant_bugs.py --out /tmp/mutants.md
    python tests/mutation/plant_bugs.py --only kl-swapped-in-reward,vf-coef-dropped
    python tests/mutation/plant_bugs.py --all-failures       # list every failing test, not -x
    python tests/mutation/plant_bugs.py --all-failures --json /tmp/mutants.json
    python tests/mutation/plant_bugs.py --list

Each mutant is one exact text replacement in a file of ``src/reftlab/rl/`` or in
``src/reftlab/stages/rl.py`` (flip a sign, drop a term, swap two arguments, ...). The working
tree is never edited: the script snapshots ``src/``, ``tests/``, ``conf/`` and
``pyproject.toml`` once into a temporary directory and checks that the test selection passes
there; then for each mutant it copies the snapshot's ``src/``, plants the bug in the copy and
runs the snapshot's tests with the copy first on ``PYTHONPATH`` (ahead of the editable
install's path entry). An interrupted run leaves no bug behind, and edits made to the working
tree meanwhile are neither clobbered nor tested half-done.

A mutant is *caught* when the selection fails. One whose ``old`` text no longer occurs exactly
once is reported *stale*: update it when the code it targets changes. The exit status is 0 when
every mutant is caught and none is stale.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SELECTION = ["tests/rl", "tests/stages", "tests/methods"]
MARKERS = "not slow and not slurm"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # under src/reftlab/
    old: str
    new: str
    what: str


STAGE = "stages/rl.py"
MUTANTS = [
    # --- the experience step and the loss (stages/rl.py) ---
    Mutant(
        "kl-swapped-in-reward",
        STAGE,
        "scores, old_logprobs, ref_logprobs, mask, s.kl_coef, s.kl_estimator",
        "scores, ref_logprobs, old_logprobs, mask, s.kl_coef, s.kl_estimator",
        "policy and reference log-probs swapped in the reward's KL (its sign flips)",
    ),
    Mutant(
        "kl-swapped-in-loss",
        STAGE,
        "get_kl_estimator(s.kl_estimator)(logprobs, exp.ref_logprobs[rows])",
        "get_kl_estimator(s.kl_estimator)(exp.ref_logprobs[rows], logprobs)",
        "policy and reference log-probs swapped in the loss's KL",
    ),
    Mutant(
        "kl-coef-dropped-in-loss",
        STAGE,
        "loss = loss + s.kl_coef * aggregate_loss(kl, mb_mask, s.loss_agg)",
        "loss = loss + aggregate_loss(kl, mb_mask, s.loss_agg)",
        "the KL loss term without kl_coef",
    ),
    Mutant(
        "kl-in-reward-also-for-loss",
        STAGE,
        'if needs_ref and s.kl_penalty == "reward":',
        "if needs_ref:",
        "kl_penalty=loss also puts the KL in the reward",
    ),
    Mutant(
        "logged-kl-swapped",
        STAGE,
        "kl = get_kl_estimator(s.kl_estimator)(old_logprobs, ref_logprobs) * mask",
        "kl = get_kl_estimator(s.kl_estimator)(ref_logprobs, old_logprobs) * mask",
        "the KL logged under kl_penalty=loss has its arguments swapped",
    ),
    Mutant(
        "vf-coef-dropped",
        STAGE,
        "loss = loss + s.vf_coef * v_loss",
        "loss = loss + v_loss",
        "the value loss added without vf_coef",
    ),
    Mutant(
        "temperature-ignored",
        STAGE,
        "batch.response_mask[part],\n            temperature,\n        )",
        "batch.response_mask[part],\n            1.0,\n        )",
        "log-probs taken at temperature 1 whatever the sampling temperature",
    ),
    Mutant(
        "old-and-new-logprobs-swapped",
        STAGE,
        "logprobs, old_logprobs, advantages, mb_mask, s.clip_range, s.loss_agg",
        "old_logprobs, logprobs, advantages, mb_mask, s.clip_range, s.loss_agg",
        "the policy loss gets old_logprobs where it needs the new ones",
    ),
    Mutant(
        "own-logprobs-not-detached",
        STAGE,
        "old_logprobs = logprobs.detach() if exp.old_logprobs is None",
        "old_logprobs = logprobs if exp.old_logprobs is None",
        "the single update's own log-probs serve as old ones without detach (ratio's grad 0)",
    ),
    Mutant(
        "stored-old-logprobs-ignored",
        STAGE,
        "old_logprobs = logprobs.detach() if exp.old_logprobs is None else exp.old_logprobs[rows]",
        "old_logprobs = logprobs.detach()",
        "the update ignores the stored old log-probs (ratio always 1)",
    ),
    Mutant(
        "single-update-despite-epochs",
        STAGE,
        "return self.ppo_epochs == 1 and one_minibatch",
        "return one_minibatch",
        "old log-probs skipped even with several PPO epochs",
    ),
    Mutant(
        "single-update-despite-kl",
        STAGE,
        "and not self.uses_values and self.kl_coef == 0",
        "and not self.uses_values",
        "old log-probs skipped even with a KL penalty",
    ),
    Mutant(
        "one-minibatch-off-by-one",
        STAGE,
        "self.mini_batch_size >= self.batch_size * self.rollouts_per_query",
        "self.mini_batch_size > self.batch_size * self.rollouts_per_query",
        "a minibatch exactly the step's size counted as several",
    ),
    Mutant(
        "gamma-lam-swapped-in-call",
        STAGE,
        "mask, batch.group_ids, s.gamma, s.lam)",
        "mask, batch.group_ids, s.lam, s.gamma)",
        "the estimator gets lam as gamma and gamma as lam",
    ),
    Mutant(
        "whiten-over-padding",
        STAGE,
        "masked_moments(w.exp.advantages, w.exp.batch.response_mask) for w in work",
        "masked_moments(w.exp.advantages, torch.ones_like(w.exp.batch.response_mask)) for w in work",
        "advantages whitened with padding counted",
    ),
    Mutant(
        "whiten-per-shard",
        STAGE,
        "whiten_with_moments(w.exp.advantages, w.exp.batch.response_mask, moments)",
        "whiten_with_moments(w.exp.advantages, w.exp.batch.response_mask, "
        "masked_moments(w.exp.advantages, w.exp.batch.response_mask))",
        "each shard whitened with its own statistics, not the whole step's",
    ),
    Mutant(
        "placeholder-shard-in-moments",
        STAGE,
        "w.weight * masked_moments(",
        "masked_moments(",
        "a zero-weight placeholder shard's advantages counted in the step's statistics",
    ),
    Mutant(
        "loss-agg-dropped-in-policy-loss",
        STAGE,
        "logprobs, old_logprobs, advantages, mb_mask, s.clip_range, s.loss_agg",
        "logprobs, old_logprobs, advantages, mb_mask, s.clip_range",
        "the policy loss always takes the token mean, whatever method.loss_agg says",
    ),
    Mutant(
        "loss-agg-dropped-in-value-loss",
        STAGE,
        "mb_mask, s.value_clip_range, s.loss_agg",
        "mb_mask, s.value_clip_range",
        "the value loss always takes the token mean, whatever method.loss_agg says",
    ),
    Mutant(
        "pass-count-share-dropped",
        STAGE,
        "scale = weight * (count / mb_count) * layout.processes",
        "scale = weight * layout.processes",
        "each pass's average weighted alike, not by its share of the minibatch's count",
    ),
    Mutant(
        "advantages-rows-unselected",
        STAGE,
        "exp.advantages[rows], old_logprobs, mb.logprobs, mb_mask",
        "exp.advantages[: len(rows)], old_logprobs, mb.logprobs, mb_mask",
        "the minibatch takes the first rows' advantages, not its own rows'",
    ),
    Mutant(
        "returns-and-old-values-swapped",
        STAGE,
        "values, exp.old_values[rows], exp.returns[rows], mb_mask",
        "values, exp.returns[rows], exp.old_values[rows], mb_mask",
        "the value loss regresses onto the old values and clips around the returns",
    ),
    Mutant(
        "gradient-ascent",
        STAGE,
        "accelerator.backward(loss * scale)",
        "accelerator.backward(-loss * scale)",
        "the update climbs the loss",
    ),
    # --- KL estimators and the penalised reward (rl/kl.py) ---
    Mutant(
        "k3-log-ratio-flipped",
        "rl/kl.py",
        "log_ratio = ref_logprobs - logprobs\n",
        "log_ratio = logprobs - ref_logprobs\n",
        "k3 with its log-ratio flipped: it estimates the reverse KL",
    ),
    Mutant(
        "k2-k3-registry-swapped",
        "rl/registry.py",
        '"k2": Entry("reftlab.rl.kl:kl_k2"),\n    "k3": Entry("reftlab.rl.kl:kl_k3"),',
        '"k2": Entry("reftlab.rl.kl:kl_k3"),\n    "k3": Entry("reftlab.rl.kl:kl_k2"),',
        "the names k2 and k3 wired to each other's estimator",
    ),
    Mutant(
        "kl-penalty-sign",
        "rl/kl.py",
        "return -kl_coef * kl + terminal, kl",
        "return kl_coef * kl + terminal, kl",
        "the KL added to the reward instead of subtracted",
    ),
    Mutant(
        "score-on-first-token",
        "rl/kl.py",
        "one_hot(last_token_index(mask), num_classes=mask.shape[-1])",
        "one_hot(torch.zeros_like(last_token_index(mask)), num_classes=mask.shape[-1])",
        "the score lands on the first response token",
    ),
    # --- GAE and outcome estimators (rl/advantages.py) ---
    Mutant(
        "gae-gamma-dropped",
        "rl/advantages.py",
        "delta = rewards[:, t] + gamma * next_value - values[:, t]",
        "delta = rewards[:, t] + next_value - values[:, t]",
        "GAE's TD error does not discount the next value",
    ),
    Mutant(
        "gae-lam-dropped",
        "rl/advantages.py",
        "gae = delta + gamma * lam * lastgaelam",
        "gae = delta + gamma * lastgaelam",
        "GAE's recursion without lambda",
    ),
    Mutant(
        "gae-returns-without-values",
        "rl/advantages.py",
        "returns = zero_masked(advantages + values, mask)\n    return advantages, returns\n\n\ndef",
        "returns = zero_masked(advantages, mask)\n    return advantages, returns\n\n\ndef",
        "GAE's returns are the advantages (values not added back)",
    ),
    Mutant(
        "rloo-includes-self",
        "rl/advantages.py",
        "leave_one_out = (sums - seq_rewards) / (sizes - 1).clamp(min=1)",
        "leave_one_out = sums / sizes",
        "RLOO's baseline includes the rollout it scores",
    ),
    # --- the losses (rl/losses.py) ---
    Mutant(
        "ratio-inverted",
        "rl/losses.py",
        "ratio = torch.exp(log_ratio)\n",
        "ratio = torch.exp(-log_ratio)\n",
        "importance ratio old / new",
    ),
    Mutant(
        "clip-upper-bound-wrong",
        "rl/losses.py",
        "torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)",
        "torch.clamp(ratio, 1.0 - clip_range, 1.0 + 2 * clip_range)",
        "the ratio clipped at 1 + 2 eps above",
    ),
    Mutant(
        "pessimistic-min-flipped",
        "rl/losses.py",
        "pg_losses = torch.maximum(pg_loss1, pg_loss2)",
        "pg_losses = torch.minimum(pg_loss1, pg_loss2)",
        "PPO takes the optimistic term",
    ),
    Mutant(
        "reinforce-sign",
        "rl/losses.py",
        "aggregate_loss(-advantages * logprobs, response_mask, loss_agg)",
        "aggregate_loss(advantages * logprobs, response_mask, loss_agg)",
        "REINFORCE's loss with the wrong sign",
    ),
    Mutant(
        "value-loss-half-dropped",
        "rl/losses.py",
        "return 0.5 * aggregate_loss(v_losses, response_mask, loss_agg), stats",
        "return aggregate_loss(v_losses, response_mask, loss_agg), stats",
        "the value loss without its 1/2",
    ),
    Mutant(
        "value-clip-max-flipped",
        "rl/losses.py",
        "v_losses = torch.maximum(v_loss_unclipped, v_loss_clipped)",
        "v_losses = torch.minimum(v_loss_unclipped, v_loss_clipped)",
        "the value clip takes the smaller error",
    ),
    Mutant(
        "approx-kl-log-term-dropped",
        "rl/losses.py",
        "masked_mean(torch.expm1(log_ratio) - log_ratio, response_mask)",
        "masked_mean(torch.expm1(log_ratio), response_mask)",
        "approx_kl is mean(ratio - 1)",
    ),
    # --- masked reductions (rl/masked.py) ---
    Mutant(
        "masked-mean-mask-dropped",
        "rl/masked.py",
        "total = masked_sum(x, mask, dim)",
        "total = x.sum() if dim is None else x.sum(dim=dim)",
        "masked_mean sums the padding too",
    ),
    Mutant(
        "masked-var-biased",
        "rl/masked.py",
        "return torch.where(n >= 2, squared_error / (n - 1).clamp(min=1), 0.0)",
        "return torch.where(n >= 2, squared_error / n.clamp(min=1), 0.0)",
        "the unbiased variance divides by n",
    ),
    Mutant(
        "moments-var-biased",
        "rl/masked.py",
        "var = torch.where(n >= 2, squared_error / (n - 1).clamp(min=1), 0.0)",
        "var = torch.where(n >= 2, squared_error / n.clamp(min=1), 0.0)",
        "the whitening variance from moments divides by n",
    ),
    Mutant(
        "moments-mean-square-sign",
        "rl/masked.py",
        "(total_squares - n * mean**2)",
        "(total_squares + n * mean**2)",
        "the squared error from moments adds n * mean^2 instead of subtracting it",
    ),
    Mutant(
        "seq-mean-counts-tokens",
        "rl/losses.py",
        "return (count_tokens(response_mask, dim=-1) > 0).sum()",
        "return count_tokens(response_mask)",
        "seq_mean's shards weighted by their tokens, not their responses",
    ),
    # --- the engine's sampling log-probs (truncated importance sampling) ---
    Mutant(
        "tis-ratio-inverted",
        "rl/losses.py",
        "ratio = torch.exp((logprobs - sampling_logprobs).detach())",
        "ratio = torch.exp((sampling_logprobs - logprobs).detach())",
        "the TIS ratio is pi_engine / pi_trainer",
    ),
    Mutant(
        "tis-weights-dropped",
        STAGE,
        "        advantages = advantages * weights\n",
        "",
        "rollout.tis_cap is logged but never weights the advantages",
    ),
]


def plant(root: Path, mutant: Mutant) -> bool:
    """Plant `mutant` in the source tree `root`; False when its text is not found exactly once."""
    path = root / "reftlab" / mutant.path
    text = path.read_text()
    if text.count(mutant.old) != 1:
        return False
    path.write_text(text.replace(mutant.old, mutant.new))
    return True


def run_tests(
    repo: Path, src: Path, all_failures: bool, timeout: float
) -> tuple[bool, list[str], float]:
    """(passed, failing test ids, seconds) of `repo`'s test selection against the source `src`."""
    env = {**os.environ, "PYTHONPATH": str(src), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider"]
    command += ["-m", MARKERS, *([] if all_failures else ["-x"]), *SELECTION]
    start = time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return False, ["(timed out)"], time.monotonic() - start
    failing = re.findall(r"^(?:FAILED|ERROR) (\S+)", result.stdout, flags=re.MULTILINE)
    if result.returncode != 0 and not failing:
        failing = [result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "?"]
    return result.returncode == 0, failing, time.monotonic() - start


def snapshot(into: Path) -> Path:
    """A copy of what the tests need (`src/`, `tests/`, `conf/`, pyproject.toml) under `into`."""
    skip = shutil.ignore_patterns("__pycache__", ".pytest_cache")
    for folder in ("src", "tests", "conf"):
        shutil.copytree(REPO / folder, into / folder, ignore=skip)
    shutil.copy2(REPO / "pyproject.toml", into / "pyproject.toml")
    return into


def source_copy(repo: Path, into: Path) -> Path:
    """A fresh copy of `repo`'s source under `into`, with `conf/` beside it (where the
    package looks for its config groups); returns the folder to put on PYTHONPATH."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(repo / "src", into / "src")
    (into / "conf").symlink_to(repo / "conf")
    return into / "src"


def check_shadowing(repo: Path, src: Path) -> None:
    """Fail loudly if `src` would not shadow the editable install."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    probe = [sys.executable, "-c", "import reftlab; print(reftlab.__file__)"]
    found = subprocess.run(probe, cwd=repo, env=env, capture_output=True, text=True).stdout
    if not found.strip().startswith(str(src)):
        raise SystemExit(f"the copy at {src} does not shadow reftlab (got {found.strip()})")


def table(rows: list[tuple[Mutant, str, list[str], float]]) -> str:
    lines = [
        "| # | mutant | file | planted bug | result | caught by | s |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, (m, verdict, failing, seconds) in enumerate(rows, 1):
        shown = "<br>".join(f"`{f}`" for f in failing[:4])
        if len(failing) > 4:
            shown += f"<br>(+{len(failing) - 4} more)"
        lines.append(
            f"| {i} | `{m.name}` | `{m.path}` | {m.what} | {verdict} | {shown} | {seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated mutant names")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--json", type=Path, help="also write every mutant's failing tests here")
    parser.add_argument("--all-failures", action="store_true", help="run without -x")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per pytest run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    mutants = MUTANTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"unknown mutants {sorted(unknown)}; --list shows the names")
        mutants = [m for m in MUTANTS if m.name in wanted]
    if args.list:
        for m in mutants:
            print(f"{m.name:32} {m.path:20} {m.what}")
        return 0

    with tempfile.TemporaryDirectory(prefix="reftlab-mutants-") as tmp:
        repo = snapshot(Path(tmp) / "repo")
        pristine = source_copy(repo, Path(tmp) / "pristine")
        check_shadowing(repo, pristine)
        passed, failing, seconds = run_tests(repo, pristine, args.all_failures, args.timeout)
        if not passed:
            print(f"the unmutated selection fails ({seconds:.0f} s): {failing}", file=sys.stderr)
            return 2
        print(f"unmutated: the selection passes ({seconds:.0f} s)", file=sys.stderr)
        rows = []
        for m in mutants:
            work = source_copy(repo, Path(tmp) / "mutant")
            if not plant(work, m):
                rows.append((m, "STALE", [], 0.0))
                print(f"{m.name}: stale (text not found once)", file=sys.stderr)
                continue
            passed, failing, seconds = run_tests(repo, work, args.all_failures, args.timeout)
            verdict = "SURVIVED" if passed else "caught"
            rows.append((m, verdict, failing, seconds))
            print(f"{m.name}: {verdict} {failing[:1]} ({seconds:.0f} s)", file=sys.stderr)
    report = table(rows)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.json:
        results = [
            {"name": m.name, "path": m.path, "what": m.what, "result": verdict, "failing": failing}
            for m, verdict, failing, _ in rows
        ]
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(verdict == "caught" for _, verdict, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
