"""Reranking with a trained reward model (ReFT sec. 4.4; an outcome verifier as in Cobbe et al. 2021).

    SFT model --sample k solutions per training question, temperature 1--> scorer labels them
    SFT weights + scalar head --weighted BCE on the score at the last token--> reward model
    at evaluation: score each test question's k samples, keep the top one    -> eval/rerank@k

The reward model is the SFT checkpoint with a linear head on the last hidden state of the last
token (the EOS that closes the solution), so it judges a whole solution at once. Sampled
solutions are mostly wrong (or mostly right, on easy data), so the two classes are weighted to
contribute equally to the loss; otherwise the head learns the base rate and ranks nothing.
The folder it is saved to is a plain transformers checkpoint plus ``reward_head.pt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from reftlab.data import Example
from reftlab.models.pretrained import resolve_dtype
from reftlab.rewards.scorer import Scorer
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import Shown, TrainingLoop, linear_schedule
from reftlab.runtime.progress import progress_bar
from reftlab.runtime.trainer_state import grad_norm_value
from reftlab.stages.batches import encode_pairs, epoch_position, step_rows
from reftlab.stages.engines import HF, RolloutEngine

REWARD_HEAD_FILE = "reward_head.pt"


# --- pure parts --------------------------------------------------------------------------------


def pick_top(scores: Sequence[float]) -> int:
    """Index of the highest score; ties go to the earliest, NaN never wins unless all are NaN."""
    if not scores:
        raise ValueError("no candidates to pick from")
    return max(
        range(len(scores)),
        key=lambda i: -math.inf if math.isnan(scores[i]) else scores[i],
    )


def class_weights(labels: Sequence[bool]) -> list[float]:
    """Per-sample loss weights under which each class carries half of the total weight.

    With ``n`` samples, ``p`` positive and ``n - p`` negative: ``n / (2 p)`` for a positive,
    ``n / (2 (n - p))`` for a negative, so the weights average 1 and a plain mean of the weighted
    losses is the class-balanced loss. If only one class is present every weight is 1.
    """
    n, positives = len(labels), sum(bool(label) for label in labels)
    if positives in (0, n):
        return [1.0] * n
    w_pos, w_neg = n / (2 * positives), n / (2 * (n - positives))
    return [w_pos if label else w_neg for label in labels]


def balanced_accuracy(predicted: Sequence[bool], labels: Sequence[bool]) -> float:
    """Mean of the per-class accuracies over the classes present (0.0 for no samples)."""
    rates = []
    for cls in (True, False):
        hits = [p == cls for p, y in zip(predicted, labels, strict=True) if bool(y) == cls]
        if hits:
            rates.append(sum(hits) / len(hits))
    return sum(rates) / len(rates) if rates else 0.0


def collate_candidates(
    encoded: Sequence[tuple[list[int], int]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` ``(B, T)`` and ``last_index`` ``(B,)``.

    ``encoded`` holds (ids, prompt length) pairs as :func:`reftlab.stages.batches.encode_pairs`
    returns them; ``last_index`` is each row's last real token, where the score is read.
    """
    width = max(len(ids) for ids, _ in encoded)
    input_ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, (ids, _) in enumerate(encoded):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention_mask[row, : len(ids)] = 1
    last_index = torch.tensor([len(ids) - 1 for ids, _ in encoded], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "last_index": last_index}


# --- the model ---------------------------------------------------------------------------------


class RewardModel(nn.Module):
    """A causal LM's backbone and a scalar head: one score (a logit of "correct") per sequence.

    The head starts at zero (every score 0, probability 1/2) and is kept in float32 whatever
    the backbone's dtype.
    """

    def __init__(self, lm: PreTrainedModel) -> None:
        super().__init__()
        self.lm = lm
        hidden_size = lm.config.get_text_config().hidden_size
        self.head = nn.Linear(hidden_size, 1, device=lm.device, dtype=torch.float32)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, last_index: torch.Tensor
    ) -> torch.Tensor:
        """Scores ``(B,)`` read at ``last_index`` of right-padded ``(B, T)`` sequences."""
        # The backbone alone: the vocabulary-sized logits are never needed.
        hidden = self.lm.base_model(
            input_ids=input_ids, attention_mask=attention_mask, use_cache=False
        ).last_hidden_state
        rows = torch.arange(hidden.size(0), device=hidden.device)
        last = hidden[rows, last_index.to(hidden.device)]  # (B, H)
        return self.head(last.to(self.head.weight.dtype)).squeeze(-1)

    def save_pretrained(self, directory: Path, tokenizer) -> None:
        """The LM as a transformers checkpoint, its tokenizer, and ``reward_head.pt`` beside."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.lm.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        torch.save(self.head.state_dict(), directory / REWARD_HEAD_FILE)


def load_reward_model(
    directory: str | Path, device: torch.device | str = "cpu", dtype: str = "float32"
) -> tuple[RewardModel, object]:
    """(reward model, its tokenizer) from a folder written by :meth:`RewardModel.save_pretrained`.

    Raises FileNotFoundError when the folder has no ``reward_head.pt``.
    """
    directory = Path(directory)
    head_path = directory / REWARD_HEAD_FILE
    if not head_path.is_file():
        raise FileNotFoundError(f"{directory} is not a reward model folder (no {REWARD_HEAD_FILE})")
    lm = AutoModelForCausalLM.from_pretrained(directory, dtype=resolve_dtype(dtype))
    model = RewardModel(lm)
    model.head.load_state_dict(torch.load(head_path, map_location="cpu", weights_only=True))
    model.to(device).eval()
    return model, AutoTokenizer.from_pretrained(directory)


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


@torch.no_grad()
def score_candidates(
    model: RewardModel,
    tokenizer,
    prompts: Sequence[str],
    completions: Sequence[str],
    batch_size: int,
    max_length: int,
) -> list[float]:
    """The reward model's score of each (prompt, completion), encoded as in SFT (EOS appended)."""
    encoded = encode_pairs(tokenizer, prompts, completions, max_length)
    device = model.head.weight.device
    was_training = model.training
    model.eval()
    scores: list[float] = []
    for start in range(0, len(encoded), batch_size):
        batch = collate_candidates(encoded[start : start + batch_size], _pad_id(tokenizer))
        scores += model(**{k: v.to(device) for k, v in batch.items()}).float().tolist()
    model.train(was_training)
    return scores


def make_reranker(
    model: RewardModel, tokenizer, batch_size: int, max_length: int
) -> Callable[[Sequence[str], Sequence[str]], list[float]]:
    """``rerank(prompts, completions) -> scores``: the callable evaluation uses."""

    def rerank(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return score_candidates(model, tokenizer, prompts, completions, batch_size, max_length)

    return rerank


# --- training data and the training loop ---------------------------------------------------


@dataclass(frozen=True)
class RewardModelSettings:
    samples: int  # solutions sampled per training question
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    max_new_tokens: int
    seed: int
    generation_batch_size: int = 64  # questions per generation call
    temperature: float = 1.0
    max_grad_norm: float = 1.0


@dataclass
class LabelledSamples:
    """Sampled solutions and whether each is right; parallel lists, one entry per sample."""

    prompts: list[str] = field(default_factory=list)
    completions: list[str] = field(default_factory=list)
    labels: list[bool] = field(default_factory=list)


def sample_labelled(
    model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    s: RewardModelSettings,
    show_progress: bool = True,
    engine: RolloutEngine = HF,
) -> LabelledSamples:
    """``s.samples`` solutions per question from ``model`` at ``s.temperature``, scored."""
    out = LabelledSamples()
    bar = progress_bar(len(examples), "reward_model samples", unit="q", disable=not show_progress)
    for start in range(0, len(examples), s.generation_batch_size):
        chunk = list(examples[start : start + s.generation_batch_size])
        prompts = [make_prompt(e) for e in chunk]
        batch = engine.generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=s.max_new_tokens,
            temperature=s.temperature,
            do_sample=True,
            num_return_sequences=s.samples,
            seed=s.seed * 1_000_003 + start,
        )
        scores = scorer.score(batch.texts, [e for e in chunk for _ in range(s.samples)])
        out.prompts += [p for p in prompts for _ in range(s.samples)]
        out.completions += batch.texts
        out.labels += [score.correct for score in scores]
        bar.update(len(chunk))
    bar.close()
    return out


def warn_if_one_class(labels: Sequence[bool]) -> None:
    """Say so when every sampled solution is right (or every one wrong): nothing to learn."""
    n, positives = len(labels), sum(labels)
    if positives in (0, n):
        kind = "right" if positives else "wrong"
        print(
            f"[reward_model] all {n} sampled solutions are {kind}: the reward model cannot learn "
            "to tell right from wrong, so reranking will be close to arbitrary",
            flush=True,
        )


def weighted_bce(scores: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor):
    """The class-weighted BCE of scores ``(B,)`` (logits) against 0/1 ``labels`` ``(B,)``."""
    per_sample = nn.functional.binary_cross_entropy_with_logits(
        scores.float(), labels, reduction="none"
    )
    return (per_sample * weights.to(per_sample.device)).mean()


def train_reward_model(
    model: RewardModel,
    tokenizer,
    samples: LabelledSamples,
    s: RewardModelSettings,
    ctx: RunContext,
    accelerator,
    stage: str = "reward_model",
) -> dict[str, float]:
    """Train ``model`` in place with class-weighted BCE; returns a summary of the training data
    and of the last epoch (``reward_model/*``). Checkpoints and resumes like ``train_sft``."""
    n = len(samples.labels)
    if n == 0:
        raise ValueError("no labelled samples to train the reward model on")
    warn_if_one_class(samples.labels)
    encoded = encode_pairs(tokenizer, samples.prompts, samples.completions, s.max_length)
    weights = torch.tensor(class_weights(samples.labels))
    labels = torch.tensor(samples.labels, dtype=torch.float32)
    steps_per_epoch = math.ceil(n / s.batch_size)
    total_steps = steps_per_epoch * s.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.0)
    scheduler = linear_schedule(optimizer, total_steps, warmup_fraction=0.03)
    loop = TrainingLoop(stage, ctx, accelerator, model, optimizer, scheduler)
    # The last epoch's predictions, labels and losses, for the summary (kept in checkpoints).
    last_epoch: dict[str, list] = {"predicted": [], "labels": [], "losses": []}

    def step(index: int) -> dict[str, float]:
        rows = step_rows(n, index, s.batch_size, s.seed)
        batch = collate_candidates([encoded[i] for i in rows], _pad_id(tokenizer))
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        mb_labels = labels[rows].to(accelerator.device)
        with accelerator.autocast():
            scores = loop.model(**batch)
        loss = weighted_bce(scores, mb_labels, weights[rows])
        accelerator.backward(loss)
        grad_norm = accelerator.clip_grad_norm_(loop.model.parameters(), s.max_grad_norm)
        loop.optimizer.step()
        loop.scheduler.step()
        loop.optimizer.zero_grad(set_to_none=True)
        predicted = (scores.detach() > 0).tolist()
        truth = [bool(y) for y in mb_labels.tolist()]
        if index >= (s.epochs - 1) * steps_per_epoch:
            last_epoch["predicted"] += predicted
            last_epoch["labels"] += truth
            last_epoch["losses"].append(loss.item())
        return {
            "train/rm_loss": loss.item(),
            "train/rm_accuracy": sum(p == y for p, y in zip(predicted, truth, strict=True))
            / len(rows),
            "train/grad_norm": grad_norm_value(grad_norm),
            "train/lr": loop.scheduler.get_last_lr()[0],
            "train/epoch": epoch_position(index, steps_per_epoch),
        }

    loop.model.train()
    loop.run(total_steps, step, show=[Shown("loss", "train/rm_loss")], state=last_epoch)
    return training_summary(samples.labels, last_epoch)


def training_summary(labels: Sequence[bool], last_epoch: dict[str, list]) -> dict[str, float]:
    """The training data's size and positive rate, and the last epoch's loss and accuracy."""
    losses = last_epoch["losses"]
    return {
        "reward_model/n_samples": len(labels),
        "reward_model/positive_rate": sum(labels) / len(labels),
        "reward_model/last_epoch_loss": sum(losses) / len(losses),
        "reward_model/last_epoch_balanced_accuracy": balanced_accuracy(
            last_epoch["predicted"], last_epoch["labels"]
        ),
    }
