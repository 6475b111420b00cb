"""What a run dir promises (README, "What a run dir promises"), checked with real processes and
real signals on one short SFT run that is stopped four ways before it finishes:

    1. SIGTERM after two steps               -> a checkpoint, exit 143
       a kill tears a line of metrics.jsonl; resume with a changed config -> refused
    2. resume=true, Ctrl-C two steps later   -> one line, exit 130
    3. resume=true, SIGKILL in the warm-up's evaluation (after its last training row)
    4. resume=force with the changed config  -> finishes, the change recorded

then commands that must leave the finished run as it is. Slow: about two minutes on two cores.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.stages.test_rl_runs import SMOKE

# 32 training examples, 8 per step, 3 epochs: 12 steps; the evaluation two questions at a time,
# long enough for a kill to land in it.
RUN = ["method=sft", "method.warmup_epochs=3", "method.sft_batch_size=8", "eval.batch_size=2"]
TOTAL_STEPS = 12
# A config key that changes nothing this run computes, but is not allowed to differ on resume.
CHANGED = "rollout.vllm.max_num_seqs=128"
TORN = '{"step": 99, "stage": "sft", "train/sft_lo'  # a record that a kill cut mid-write
RECORD = ("config.yaml", "plan.json", ".hydra/config.yaml", ".hydra/overrides.yaml")

pytestmark = pytest.mark.slow


def command(run_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "reftlab", f"hydra.run.dir={run_dir}", *SMOKE, *RUN, *overrides]


def environment(cache: Path) -> dict[str, str]:
    return {**os.environ, "REFTLAB_CACHE": str(cache)}


def default_sigint() -> None:
    """In the child: Ctrl-C's default handling, which a shell's background job (`pytest &`,
    nohup) would otherwise pass down as ignored, as a user's terminal has it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(run_dir: Path, cache: Path, log: Path, *overrides: str) -> subprocess.Popen:
    """A run in the background, its stdout and stderr in `log`.out / `log`.err (not terminals)."""
    return subprocess.Popen(
        command(run_dir, *overrides),
        stdout=log.with_suffix(".out").open("w"),
        stderr=log.with_suffix(".err").open("w"),
        env=environment(cache),
        start_new_session=True,
        preexec_fn=default_sigint,
    )


def finish(proc: subprocess.Popen, log: Path) -> SimpleNamespace:
    try:
        rc = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    out, err = (log.with_suffix(s).read_text() for s in (".out", ".err"))
    return SimpleNamespace(returncode=rc, stdout=out, stderr=err)


def run(run_dir: Path, cache: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        command(run_dir, *overrides),
        capture_output=True,
        text=True,
        env=environment(cache),
        timeout=300,
    )


def records(run_dir: Path) -> list[dict]:
    """The complete records so far (a line being written is skipped)."""
    path = run_dir / "metrics.jsonl"
    out = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def train_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in records(run_dir) if "train/sft_loss" in r]


def eval_rows(run_dir: Path) -> list[dict]:
    return [r for r in records(run_dir) if "reused" in r]


def wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> bool:
    """Poll until `condition()`; False when the process exits first or time runs out (the
    story goes on, and the tests say what went wrong)."""
    deadline = time.time() + timeout
    while not condition():
        if proc.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def record_bytes(run_dir: Path, names=RECORD) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in names}


def temporaries(cache: Path) -> list[str]:
    return sorted(p.name for p in (cache / "stages").glob(".sft-*") if p.is_dir())


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("story")
    run_dir, cache = root / "run", root / "cache"
    seen = SimpleNamespace(run_dir=run_dir, cache=cache, root=root)

    proc = start(run_dir, cache, root / "1")
    seen.reached = {"term": wait_for(lambda: len(train_steps(run_dir)) >= 2, proc)}
    proc.send_signal(signal.SIGTERM)  # (when it already exited, the tests show why)
    seen.term = finish(proc, root / "1")
    seen.steps_at_term = train_steps(run_dir)
    seen.checkpoints_at_term = [p.name for p in (run_dir / "checkpoints" / "sft").glob("step-*")]

    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(TORN)
    before = record_bytes(run_dir, (*RECORD, "metrics.jsonl", "progress.json"))
    seen.changed = run(run_dir, cache, "resume=true", CHANGED)
    seen.changed_untouched = record_bytes(run_dir, tuple(before)) == before

    proc = start(run_dir, cache, root / "2", "resume=true")
    done = len(train_steps(run_dir))
    seen.reached["int"] = wait_for(lambda: len(train_steps(run_dir)) >= done + 2, proc)
    proc.send_signal(signal.SIGINT)
    seen.interrupted = finish(proc, root / "2")

    proc = start(run_dir, cache, root / "3", "resume=true")
    seen.reached["kill"] = wait_for(lambda: TOTAL_STEPS in train_steps(run_dir), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    seen.eval_rows_at_kill = eval_rows(run_dir)
    seen.temporaries_at_kill = temporaries(cache)

    seen.forced = run(run_dir, cache, "resume=force", CHANGED)
    seen.logs = [(root / f"{i}.err").read_text() for i in (1, 2, 3)] + [seen.forced.stderr]
    return seen


def test_sigterm_writes_a_checkpoint_and_exits_143(story):
    assert story.reached["term"]
    assert story.term.returncode == 143, story.term.stderr[-2000:]
    assert story.checkpoints_at_term == [f"step-{story.steps_at_term[-1]}"]
    assert "resume=true" in last_line(story.term.stderr)
    assert f"hydra.run.dir={story.run_dir}" in last_line(story.term.stderr)


def test_ctrl_c_prints_one_line_not_a_traceback(story):
    assert story.reached["int"], story.interrupted.stderr[-2000:]
    assert story.interrupted.returncode == 130
    assert "Traceback" not in story.interrupted.stderr
    line = last_line(story.interrupted.stderr)
    assert re.fullmatch(r"reftlab: interrupted at step \d+ in sft; resume with: reftlab .*", line)
    assert "resume=true" in line


def test_a_changed_config_is_refused_naming_the_key_before_anything_is_written(story):
    assert story.changed.returncode == 2
    line = last_line(story.changed.stderr)
    assert line.startswith("reftlab: error: resume: the config differs")
    assert "rollout.vllm.max_num_seqs: 256 -> 128" in line and "resume=force" in line
    assert "Traceback" not in story.changed.stderr
    assert story.changed_untouched


def test_resume_force_continues_and_records_the_change(story):
    assert story.forced.returncode == 0, story.forced.stderr[-2000:]
    summary = json.loads((story.run_dir / "summary.json").read_text())
    modes = [a["mode"] for a in summary["attempts"]]
    assert modes == ["fresh", "resume", "resume", "force"]
    assert summary["attempts"][-1]["changed"] == {"rollout.vllm.max_num_seqs": [256, 128]}
    assert "max_num_seqs: 128" in (story.run_dir / "config.yaml").read_text()


def test_metrics_survive_a_torn_line_and_every_kill(story):
    lines = (story.run_dir / "metrics.jsonl").read_text().splitlines()
    parsed = [json.loads(line) for line in lines]  # every line is a whole record
    assert [r["step"] for r in parsed if "train/sft_loss" in r] == list(range(1, TOTAL_STEPS + 1))
    # The kill landed after the warm-up's last training row and before its evaluation's row,
    # which shares that step; the resumed run logged the evaluation.
    assert story.reached["kill"] and story.eval_rows_at_kill == []
    evals = [r for r in parsed if "reused" in r]
    assert [(r["stage"], r["step"]) for r in evals] == [("sft", TOTAL_STEPS)]


def test_wall_time_counts_every_attempt(story):
    summary = json.loads((story.run_dir / "summary.json").read_text())
    spans = [a["ended"] - a["started"] for a in summary["attempts"]]
    assert all(span > 0 for span in spans)
    assert summary["wall_time_s"] == pytest.approx(sum(spans), abs=0.2)
    # Not the last attempt's alone: the three stopped ones add their time (under a second in
    # all on a fast idle CPU; wall_time_s is rounded to 0.1 s).
    assert len(spans) == 4 and summary["wall_time_s"] > spans[-1] + 0.15


def test_a_kill_leaves_no_temporary_folder_and_the_cache_is_group_readable(story):
    assert story.temporaries_at_kill, "the kill should have left the warm-up's build folder"
    assert temporaries(story.cache) == []
    (warmup,) = (story.cache / "stages").glob("sft-*")
    umask = os.umask(0)
    os.umask(umask)
    assert warmup.stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_log_file_gets_plain_progress_lines(story):
    for log in story.logs:
        assert "\r" not in log
    assert re.search(
        r"^\[sft\] step \d+/12 loss=\S+ epoch=\S+ [\d.]+ s/step eta", story.logs[0], re.M
    )


def test_a_refused_rerun_leaves_the_finished_run_untouched(story):
    names = (*RECORD, ".hydra/hydra.yaml", "summary.json", "metrics.jsonl", "progress.json")
    before = record_bytes(story.run_dir, names)
    result = run(story.run_dir, story.cache, "seed=5")
    assert result.returncode == 2
    assert "already holds a run" in last_line(result.stderr)
    assert record_bytes(story.run_dir, names) == before


def test_resuming_a_finished_run_changes_nothing(story):
    names = ("summary.json", "progress.json", "metrics.jsonl", *RECORD)
    before = record_bytes(story.run_dir, names)
    result = run(story.run_dir, story.cache, "resume=force", CHANGED)
    assert result.returncode == 0
    assert "nothing to resume" in result.stdout
    assert record_bytes(story.run_dir, names) == before


def test_resume_on_a_mistyped_dir_is_an_error(story):
    mistyped = story.root / "rnu"
    result = run(mistyped, story.cache, "resume=true")
    assert result.returncode == 2
    assert last_line(result.stderr).startswith("reftlab: error: resume=true: no run to resume")
    assert not mistyped.exists()


def test_resume_without_the_cached_warmup_says_what_is_missing(story):
    """Killed between the warm-up and the last stage, with the cache's warm-up deleted since."""
    copy = story.root / "copy"
    shutil.copytree(story.run_dir, copy)
    (copy / "summary.json").unlink()
    progress = json.loads((copy / "progress.json").read_text())
    del progress["completed"]["evaluate"]
    (copy / "progress.json").write_text(json.dumps(progress))
    (warmup,) = (story.cache / "stages").glob("sft-*")
    warmup.rename(warmup.with_name("moved"))
    try:
        result = run(copy, story.cache, "resume=true", CHANGED)
    finally:
        warmup.with_name("moved").rename(warmup)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    line = last_line(result.stderr)
    assert line.startswith("reftlab: error: resume: the sft stage finished") and str(warmup) in line


def test_a_job_waiting_for_the_warmup_lock_says_for_whom(tmp_path):
    lock = tmp_path / "stages" / ".sft-k.lock"
    lock.parent.mkdir(parents=True)
    script = (
        "import sys; from pathlib import Path; from reftlab.runtime.reuse import cached_stage; "
        "print('built', cached_stage(Path(sys.argv[1]), 'sft', 'k', lambda f: {})[2])"
    )
    out = tmp_path / "waiter.out"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("node7 pid 4242 since 12:00:00")
        held.flush()
        waiter = subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)], stdout=out.open("w")
        )
        assert wait_for(lambda: "waiting" in out.read_text(), waiter, timeout=60), out.read_text()
        fcntl.flock(held, fcntl.LOCK_UN)
    assert waiter.wait(timeout=60) == 0
    text = out.read_text()
    assert "waiting for node7 pid 4242 since 12:00:00 to finish sft-k" in text
    assert str(lock) in text and text.strip().endswith("built False")
