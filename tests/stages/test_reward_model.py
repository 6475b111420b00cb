"""The reward model for reranking: pure selection and weighting, the model, and its training."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from reftlab.models import build_tiny_model, build_tokenizer
from reftlab.runtime import preemption
from reftlab.runtime.context import RunContext
from reftlab.runtime.tracking import MetricsLogger, read_metrics
from reftlab.stages.reward_model import (
    LabelledSamples,
    RewardModel,
    RewardModelSettings,
    balanced_accuracy,
    class_weights,
    collate_candidates,
    load_reward_model,
    pick_top,
    score_candidates,
    train_reward_model,
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: the machine is shared, and tiny-model steps are faster so."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- pure parts ---------------------------------------------------------------------------------


def test_pick_top_golden() -> None:
    assert pick_top([0.1, 0.7, -2.0]) == 1
    assert pick_top([0.3, 0.9, 0.9, 0.1]) == 1  # tie: the earliest
    assert pick_top([math.nan, -1.0]) == 1  # NaN never beats a number
    assert pick_top([math.nan, math.nan]) == 0
    with pytest.raises(ValueError, match="no candidates"):
        pick_top([])


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1))
def test_pick_top_is_the_first_maximum(scores: list[float]) -> None:
    top = pick_top(scores)
    assert scores[top] == max(scores)
    assert all(s < scores[top] for s in scores[:top])


def test_class_weights_golden() -> None:
    # 1 right, 3 wrong out of n = 4: right 4 / (2 * 1) = 2, wrong 4 / (2 * 3) = 2/3; each class
    # then carries 2 of the total weight 4.
    assert class_weights([True, False, False, False]) == pytest.approx([2, 2 / 3, 2 / 3, 2 / 3])
    assert class_weights([False, False]) == [1.0, 1.0]  # one class: nothing to balance
    assert class_weights([True]) == [1.0]
    assert class_weights([]) == []


@given(st.lists(st.booleans(), min_size=2).filter(lambda ls: 0 < sum(ls) < len(ls)))
def test_class_weights_split_the_weight_evenly(labels: list[bool]) -> None:
    weights = class_weights(labels)
    right = sum(w for w, y in zip(weights, labels, strict=True) if y)
    wrong = sum(w for w, y in zip(weights, labels, strict=True) if not y)
    assert right == pytest.approx(len(labels) / 2)
    assert wrong == pytest.approx(len(labels) / 2)
    assert sum(weights) / len(weights) == pytest.approx(1.0)


def test_balanced_accuracy_golden() -> None:
    # Right class: 1 of 1 found; wrong class: 2 of 3 -> (1 + 2/3) / 2.
    predicted = [True, False, True, False]
    labels = [True, False, False, False]
    assert balanced_accuracy(predicted, labels) == pytest.approx((1 + 2 / 3) / 2)
    # Always "wrong" on a 1-in-4 set: plain accuracy 3/4, balanced (0 + 1) / 2.
    assert balanced_accuracy([False] * 4, labels) == pytest.approx(0.5)
    assert balanced_accuracy([], []) == 0.0


def test_collate_candidates_pads_right_and_points_at_the_last_token() -> None:
    batch = collate_candidates([([5, 6, 7], 1), ([8, 9], 1)], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["last_index"].tolist() == [2, 1]


# --- the model ----------------------------------------------------------------------------------

EPOCHS, LR = 150, 1e-2
QUESTIONS = [(a, b) for a in range(1, 5) for b in range(1, 3)]


def problem(a: int, b: int) -> str:
    return f"Q: {a} + {b} = "


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    corpus = [problem(a, b) + f"The answer is {a + b}." for a in range(10) for b in range(10)]
    return build_tokenizer(corpus, vocab_size=300, save_dir=tmp_path_factory.mktemp("tok"))


def small_lm(tokenizer, seed: int = 0):
    return build_tiny_model(
        tokenizer,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        seed=seed,
    )


def trained_head(tokenizer) -> RewardModel:
    model = RewardModel(small_lm(tokenizer))
    torch.nn.init.normal_(model.head.weight, std=1.0)  # a zero head scores everything 0
    return model


def test_scores_ignore_padding_and_survive_a_save(tokenizer, tmp_path) -> None:
    model = trained_head(tokenizer)
    prompts = [problem(1, 2), problem(3, 4)]
    completions = ["The answer is 3.", "The answer is 7, because 3 + 4 = 7."]
    together = score_candidates(model, tokenizer, prompts, completions, 2, max_length=64)
    alone = [
        score_candidates(model, tokenizer, [p], [c], 1, max_length=64)[0]
        for p, c in zip(prompts, completions, strict=True)
    ]
    # Row 0 is padded to row 1's length in the batch; padding after the last token is unseen.
    assert together == pytest.approx(alone, abs=1e-5)
    assert together[0] != pytest.approx(together[1], abs=1e-6)

    model.save_pretrained(tmp_path / "rm", tokenizer)
    loaded, loaded_tokenizer = load_reward_model(tmp_path / "rm")
    again = score_candidates(loaded, loaded_tokenizer, prompts, completions, 2, max_length=64)
    assert again == pytest.approx(together, abs=1e-6)


def test_load_reward_model_needs_the_head(tokenizer, tmp_path) -> None:
    small_lm(tokenizer).save_pretrained(tmp_path / "plain")
    with pytest.raises(FileNotFoundError, match="reward_head.pt"):
        load_reward_model(tmp_path / "plain")


def one_right_three_wrong() -> LabelledSamples:
    samples = LabelledSamples()
    for a, b in QUESTIONS:
        for answer in (a + b, a + b + 1, a + b + 2, a + b + 3):
            samples.prompts.append(problem(a, b))
            samples.completions.append(f"The answer is {answer}.")
            samples.labels.append(answer == a + b)
    return samples


def test_training_separates_right_from_wrong_solutions(tokenizer, tmp_path) -> None:
    """One right and three wrong solutions per question (a 1-in-4 base rate, as sampled
    solutions often are): after training every right one outranks its question's wrong ones."""
    from accelerate import Accelerator

    samples = one_right_three_wrong()
    settings = RewardModelSettings(
        samples=4, epochs=EPOCHS, lr=LR, batch_size=16, max_length=64, max_new_tokens=8, seed=0
    )
    model = RewardModel(small_lm(tokenizer, seed=1))
    ctx = RunContext(run_dir=tmp_path, logger=MetricsLogger(tmp_path))
    accelerator = Accelerator(cpu=True)
    summary = train_reward_model(model, tokenizer, samples, settings, ctx, accelerator)

    assert summary["reward_model/n_samples"] == 4 * len(QUESTIONS)
    assert summary["reward_model/positive_rate"] == pytest.approx(1 / 4)
    losses = [r["train/rm_loss"] for r in read_metrics(tmp_path)]
    assert len(losses) == EPOCHS * 2  # 32 samples / 16 per step = 2 steps per epoch
    assert sum(losses[-4:]) / 4 < 0.5 * sum(losses[:4]) / 4

    scores = score_candidates(model, tokenizer, samples.prompts, samples.completions, 32, 64)
    for q in range(len(QUESTIONS)):
        right, *wrong = scores[4 * q : 4 * q + 4]
        assert right > max(wrong), (QUESTIONS[q], scores[4 * q : 4 * q + 4])
    assert summary["reward_model/last_epoch_balanced_accuracy"] > 0.9


class Requeued(Exception):
    """Stands in for submitit's exit after `scontrol requeue`."""


def open_run(run_dir, resume: bool = False) -> RunContext:
    run_dir.mkdir(exist_ok=True)
    return RunContext.open(run_dir, MetricsLogger(run_dir), resume=resume, save_every=0)


def reward_model_stage(ctx: RunContext, tokenizer) -> tuple[RewardModel, dict]:
    """The `reward_model` stage of the run `ctx`: 3 epochs of 2 steps from fresh weights."""
    from accelerate import Accelerator

    settings = RewardModelSettings(
        samples=4, epochs=3, lr=LR, batch_size=16, max_length=64, max_new_tokens=8, seed=0
    )
    model, accelerator = RewardModel(small_lm(tokenizer, seed=1)), Accelerator(cpu=True)
    summary = ctx.stage(
        "reward_model",
        lambda: train_reward_model(
            model, tokenizer, one_right_three_wrong(), settings, ctx, accelerator
        ),
    )
    return model, summary


def logged(run_dir) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in read_metrics(run_dir)]


@pytest.mark.parametrize("interrupted_at", [2, 5])  # the end of epoch 1; inside the last epoch
def test_interrupted_training_resumes_to_the_same_model(
    tokenizer, tmp_path, monkeypatch, interrupted_at
) -> None:
    """SLURM's signal mid-stage: a step checkpoint, the requeue, and a resumed run that ends
    with the weights, metrics and last-epoch summary of a run that was never interrupted."""
    through, through_summary = reward_model_stage(open_run(tmp_path / "through"), tokenizer)

    ctx = open_run(tmp_path / "run")
    signals = iter([True])  # one signal, at the step boundary after step `interrupted_at`
    monkeypatch.setattr(
        preemption, "requested", lambda: ctx.global_step == interrupted_at and next(signals, False)
    )

    def requeue():
        raise Requeued

    monkeypatch.setattr(preemption, "requeue", requeue)
    with pytest.raises(Requeued):
        reward_model_stage(ctx, tokenizer)
    assert ctx.latest_checkpoint("reward_model").stage_step == interrupted_at

    resumed, resumed_summary = reward_model_stage(
        open_run(tmp_path / "run", resume=True), tokenizer
    )
    assert resumed_summary == through_summary
    through_weights = through.state_dict()
    for name, tensor in resumed.state_dict().items():
        assert torch.equal(tensor, through_weights[name]), name
    assert logged(tmp_path / "run") == logged(tmp_path / "through")
    assert [r["step"] for r in logged(tmp_path / "run")] == [1, 2, 3, 4, 5, 6]
