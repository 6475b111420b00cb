"""`reftlab eval CHECKPOINT [output=FILE] [OVERRIDES ...]`: evaluate a saved model.

The model is evaluated on a data set's test split exactly as a run evaluates
(`reftlab.stages.evaluate`); the predictions are written to a JSONL file and one JSON line of
metrics is printed. Input errors (no such checkpoint, no reward model to rerank with, bad
override) are a `ReftlabError`: one line on stderr, exit code 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from reftlab.app.io import OUTPUT_ARG, asks_for_help, print_json_line
from reftlab.app.writable import check_writable
from reftlab.data import CHOICE, format_prompt
from reftlab.errors import ReftlabError

if TYPE_CHECKING:
    from reftlab.config import EvalConfig, RunConfig
    from reftlab.data.splits import Splits
    from reftlab.methods.schedule import Schedule

EVAL_USAGE = """\
usage: reftlab eval CHECKPOINT [output=FILE] [OVERRIDES ...]

Evaluate a saved model on the test split of a data set with the evaluation a run uses: greedy
accuracy; with eval.samples=K also majority voting (maj@K) and pass@K; with eval.rerank=true
also reranking of the K samples by a trained reward model (rerank@K); on multiple-choice data
sets the reward-hacking check.

  CHECKPOINT   a transformers model folder (config.json, weights, tokenizer): a run's
               checkpoints/<stage>/final, or a warm-up in cache_dir/stages/sft-*.
  output=FILE  per-question predictions, JSONL (default: eval_<dataset>_<cot>.jsonl here).
  OVERRIDES    Hydra overrides as for training: dataset=..., cot=... (the prompt format the
               model was trained with), budget.max_test_examples=N, model.max_new_tokens=N,
               eval.samples=K, eval.temperature=T, eval.batch_size=B, precision=...;
               eval.rerank=true needs eval.reward_model=DIR, a reward model that a run with
               eval.rerank=true trained (cache_dir/stages/reward_model-*).

Prints one JSON line: the eval/* metrics, and the checkpoint, data set, cot, test source and
output file. Input errors: one line on stderr, exit 2.

example:
  reftlab eval outputs/.../checkpoints/ppo/final dataset=gsm8k dataset.path=DIR eval.samples=8
"""


def split_eval_args(argv: Sequence[str]) -> tuple[Path, Path | None, list[str]]:
    """The checkpoint folder (the one argument without ``=``), ``output=FILE``, the overrides."""
    positional = [arg for arg in argv if "=" not in arg and not arg.startswith("-")]
    if len(positional) != 1:
        found = f"got {len(positional)}: {' '.join(positional)}" if positional else "got none"
        raise ReftlabError(
            f"reftlab eval needs one CHECKPOINT folder ({found}); see reftlab eval --help"
        )
    output = None
    overrides = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if arg in positional:
            continue
        if sep and key == OUTPUT_ARG:
            if output is not None or not value:
                raise ReftlabError("output= needs one file path, given once")
            output = Path(value).expanduser()
        else:
            overrides.append(arg)
    return Path(positional[0]).expanduser(), output, overrides


def check_model_folder(path: Path, what: str = "CHECKPOINT") -> None:
    """A folder that transformers can load a model from; else a one-line error."""
    if not path.exists():
        raise ReftlabError(f"{what} {path}: no such folder")
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ReftlabError(
            f"{what} {path} is not a model folder (no config.json); give a transformers "
            "checkpoint folder such as a run's checkpoints/<stage>/final"
        )


def weights_dtype_for(precision: str) -> str:
    """The dtype to load weights in for ``precision`` (auto: bf16 on GPUs that support it)."""
    import torch

    if precision == "auto":
        use_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return "bfloat16" if use_bf16 else "float32"
    return {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}[precision]


def reward_model_folder(e: EvalConfig) -> Path | None:
    """The reward model that ``eval.rerank=true`` reranks with, checked; ``None`` without one."""
    from reftlab.stages.reward_model import REWARD_HEAD_FILE

    reward_model = Path(e.reward_model).expanduser() if e.reward_model else None
    if e.rerank and reward_model is None:
        raise ReftlabError(
            "eval.rerank=true in reftlab eval needs eval.reward_model=DIR (a reward model a run "
            "with eval.rerank=true trained, under cache_dir/stages/reward_model-*)"
        )
    if reward_model is not None:
        check_model_folder(reward_model, "eval.reward_model")
        if not (reward_model / REWARD_HEAD_FILE).is_file():
            raise ReftlabError(
                f"eval.reward_model={reward_model} is not a reward model folder "
                f"(no {REWARD_HEAD_FILE})"
            )
    return reward_model


def load_model(checkpoint: Path, dtype: str, device: str):
    """The model (on ``device``) and tokenizer of a checkpoint folder; a one-line error if
    transformers cannot load them."""
    from safetensors import SafetensorError

    from reftlab.models.pretrained import load_pretrained

    try:
        model, tokenizer = load_pretrained(checkpoint, dtype=dtype)
    except (OSError, ValueError, SafetensorError) as exc:  # a truncated or garbage weights file
        raise ReftlabError(
            f"CHECKPOINT {checkpoint}: cannot load the model: {str(exc).splitlines()[0]}"
        ) from None
    model.to(device)
    return model, tokenizer


def load_reranker(
    run: RunConfig, schedule: Schedule, reward_model: Path | None, device: str, dtype: str
):
    """The reward model's reranker when ``eval.rerank=true`` has samples to rerank, else ``None``."""
    from reftlab.stages.reward_model import load_reward_model, make_reranker

    if not (run.eval.rerank and schedule.eval_samples > 1):
        return None
    rm, rm_tokenizer = load_reward_model(reward_model, device, dtype)
    return make_reranker(rm, rm_tokenizer, run.eval.batch_size, run.model.max_length)


def evaluate_on_test(
    run: RunConfig, model, tokenizer, splits: Splits, schedule: Schedule, rerank, output: Path
) -> dict:
    """The eval/* metrics of the model on the test split, as a run evaluates; writes ``output``."""
    from reftlab.methods.env import make_run_engine
    from reftlab.methods.inputs import make_scorer
    from reftlab.stages.evaluate import evaluate_model

    e = run.eval
    # The model's weights are what they are: the engine computes in the dtype they were loaded in.
    engine = make_run_engine(run, "no", model)
    with make_scorer(run) as scorer:
        return evaluate_model(
            model,
            tokenizer,
            splits.test,
            lambda example: format_prompt(run.cot.prompt_template, example),
            scorer,
            batch_size=e.batch_size,
            max_new_tokens=schedule.max_new_tokens,
            samples=schedule.eval_samples,
            temperature=e.temperature,
            seed=run.seed,
            rerank=rerank,
            check_hacking=splits.answer_type == CHOICE,
            predictions_path=output,
            show_progress=False,
            engine=engine,
        )


def eval_checkpoint(argv: Sequence[str]) -> int:
    """Evaluate a saved model on a data set's test split (see ``EVAL_USAGE``)."""
    if asks_for_help(argv):
        print(EVAL_USAGE, end="")
        return 0
    import torch

    from reftlab.app.compose import compose_run
    from reftlab.methods.inputs import fit_to_context, load_run_splits
    from reftlab.methods.schedule import make_schedule

    checkpoint, output, overrides = split_eval_args(argv)
    check_model_folder(checkpoint)
    run = compose_run(overrides)
    reward_model = reward_model_folder(run.eval)
    output = output or Path(f"eval_{run.dataset.name}_{run.cot.name}.jsonl")
    check_writable(output, OUTPUT_ARG)
    schedule = make_schedule(run)
    splits = load_run_splits(run, need_train=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = weights_dtype_for(run.precision)
    model, tokenizer = load_model(checkpoint, dtype, device)
    splits = fit_to_context(run, splits, tokenizer)
    rerank = load_reranker(run, schedule, reward_model, device, dtype)
    metrics = evaluate_on_test(run, model, tokenizer, splits, schedule, rerank, output)
    print_json_line(
        {
            **metrics,
            "checkpoint": str(checkpoint),
            "dataset": run.dataset.name,
            "cot": run.cot.name,
            "test_source": splits.sources["test"],
            "reward_model": str(reward_model) if rerank is not None else None,
            "output": str(output),
        }
    )
    return 0
