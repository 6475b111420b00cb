"""The one RL engine: rollouts -> scores -> per-token rewards -> advantages -> loss -> update.

ReFT, the bandit baseline and PrefixRL are this loop with different parts, chosen by name from
the registries in `reftlab.rl.registry` (README, "The RL engine"):

    for each step:
        rollouts      = sample(policy, prompts, rollouts_per_query)
        scores        = outcome rewards of the completions                  (B,)
        old_logprobs, old_values = policy(rollouts); ref_logprobs = ref(rollouts)   (B, T)
        rewards       = scores at the last token [- kl_coef * KL per token]  (B, T)
        advantages, returns = ADVANTAGES[advantage](rewards, old_values, ...)
        [advantages   = whitened with the mean and std of the whole step's batch]
        for ppo_epochs, for minibatches:
            loss = policy_loss(...) [+ vf_coef * value_loss] [+ kl_coef * KL]
                   (each term averaged by loss_agg: over tokens, or per response)

With several processes (or grad_accum > 1) each step's questions are split into shards; every
shard runs the rollout half of the loop on its questions, and the update takes each minibatch
across all shards (`stages.shards`). One process with grad_accum=N takes exactly the steps that
N processes take (up to float summation order): the loss is normalised by the whole
minibatch's count (tokens, or responses for `loss_agg=seq_mean`), and `whiten_advantages` uses
the moments of the whole step, summed over shards and all-reduced over processes. Advantage
estimators see one shard's rollouts: `batch_mean` uses the shard's mean, the others are per
question or per rollout and do not depend on the split.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from reftlab.data import Example
from reftlab.models.value import PolicyWithValue
from reftlab.rewards.scorer import Scorer
from reftlab.rl.advantages import get_advantage_estimator
from reftlab.rl.kl import get_kl_estimator, kl_penalized_rewards
from reftlab.rl.losses import (
    aggregate_loss,
    aggregation_count,
    explained_variance,
    get_policy_loss,
    truncated_importance_weights,
    value_loss,
)
from reftlab.rl.masked import masked_mean, masked_moments, whiten_with_moments
from reftlab.rl.registry import advantage_spec
from reftlab.runtime import distributed
from reftlab.runtime.context import RunContext
from reftlab.runtime.loop import Periodic, Shown, TrainingLoop
from reftlab.runtime.trainer_state import grad_norm_value
from reftlab.stages.batches import question_batch, step_seed
from reftlab.stages.engines import HF, RolloutEngine
from reftlab.stages.rollout import RolloutBatch, compute_logprobs, compute_logprobs_and_values
from reftlab.stages.shards import (
    SINGLE,
    MinibatchSplit,
    ShardLayout,
    WeightedMeans,
    combine_metrics,
    shard_seed,
    split_minibatches,
)


@dataclass(frozen=True)
class RLSettings:
    steps: int
    batch_size: int
    mini_batch_size: int
    rollouts_per_query: int
    ppo_epochs: int
    lr: float
    advantage: str
    policy_loss: str
    kl_coef: float
    kl_estimator: str
    kl_penalty: str
    gamma: float
    lam: float
    clip_range: float | None
    value_clip_range: float | None
    vf_coef: float
    whiten_advantages: bool
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    max_grad_norm: float = 1.0
    grad_accum: int = 1
    value_lr: float | None = None  # the critic's own parameters; None: lr
    # Truncated importance sampling of the engine's samples (rollout.tis_cap); None: off.
    tis_cap: float | None = None
    # Rollouts per forward/backward pass (memory only); None: a shard's minibatch rows at once.
    micro_batch_size: int | None = None
    # How each loss term averages its tokens: token_mean or seq_mean (rl.losses.aggregate_loss).
    loss_agg: str = "token_mean"

    @property
    def uses_values(self) -> bool:
        """Whether the advantage estimator reads a value model's estimates (and trains it)."""
        return advantage_spec(self.advantage).needs_values

    @property
    def single_on_policy_update(self) -> bool:
        """One update per batch, on exactly the policy that sampled it, with nothing else that
        needs the sampling policy's log-probs (no value model, no KL): the old log-probs then
        equal the update's own, so the separate forward pass that computes them is skipped."""
        one_minibatch = self.mini_batch_size >= self.batch_size * self.rollouts_per_query
        return self.ppo_epochs == 1 and one_minibatch and not self.uses_values and self.kl_coef == 0


def make_optimizer(policy, s: RLSettings) -> torch.optim.Optimizer:
    """AdamW over the policy, with the critic's own parameters (value head, value backbone) at
    `s.value_lr` when it is set."""
    critic = policy.critic_parameters() if isinstance(policy, PolicyWithValue) else []
    if s.value_lr is None or not critic:
        return torch.optim.AdamW(policy.parameters(), lr=s.lr, weight_decay=0.0)
    critic_ids = {id(p) for p in critic}
    actor = [p for p in policy.parameters() if id(p) not in critic_ids]
    groups = [{"params": actor, "lr": s.lr}, {"params": critic, "lr": s.value_lr}]
    return torch.optim.AdamW(groups, weight_decay=0.0)


def forward_logprobs(
    model,
    batch: RolloutBatch,
    temperature: float,
    with_values: bool = False,
    micro_batch_size: int | None = None,
):
    """(logprobs, values or None), both (B, T), of the batch's response tokens; the forward
    passes take at most `micro_batch_size` rows each (all of them when None)."""
    rows = batch.input_ids.shape[0]
    step = micro_batch_size or rows
    parts = []
    for start in range(0, rows, step):
        part = slice(start, start + step)
        args = (
            batch.input_ids[part],
            batch.attention_mask[part],
            batch.response_mask[part],
            temperature,
        )
        if with_values:
            parts.append(compute_logprobs_and_values(model, *args))
        else:
            parts.append((compute_logprobs(model, *args), None))
    logprobs = torch.cat([lp for lp, _ in parts])
    values = torch.cat([v for _, v in parts]) if with_values else None
    return logprobs, values


def select_rows(batch: RolloutBatch, rows: torch.Tensor) -> RolloutBatch:
    """The minibatch `rows` of a rollout batch (texts included)."""
    picked = rows.tolist()
    return RolloutBatch(
        query_ids=batch.query_ids[rows],
        response_ids=batch.response_ids[rows],
        input_ids=batch.input_ids[rows],
        attention_mask=batch.attention_mask[rows],
        response_mask=batch.response_mask[rows],
        texts=[batch.texts[i] for i in picked],
        group_ids=batch.group_ids[rows],
        logprobs=None if batch.logprobs is None else batch.logprobs[rows],
    )


@dataclass
class Experience:
    """One step's rollouts with everything the update needs; all tensors (B, T) unless noted."""

    batch: RolloutBatch
    old_logprobs: torch.Tensor | None  # None: the single update's own log-probs serve
    old_values: torch.Tensor | None
    ref_logprobs: torch.Tensor | None
    advantages: torch.Tensor
    returns: torch.Tensor
    scores: torch.Tensor  # (B,)
    kl: torch.Tensor


@torch.no_grad()
def make_experience(
    policy, ref_model, batch: RolloutBatch, scores: torch.Tensor, s: RLSettings
) -> Experience:
    mask = batch.response_mask
    if s.single_on_policy_update:  # the update uses its own log-probs, detached, as the old ones
        old_logprobs, old_values = None, None
    else:
        old_logprobs, old_values = forward_logprobs(
            policy, batch, s.temperature, s.uses_values, s.micro_batch_size
        )
    needs_ref = s.kl_coef > 0
    if needs_ref and ref_model is None:
        raise ValueError(f"kl_coef={s.kl_coef} needs a reference model; got none")
    ref_logprobs = (
        forward_logprobs(ref_model, batch, s.temperature, False, s.micro_batch_size)[0]
        if needs_ref
        else None
    )

    if needs_ref and s.kl_penalty == "reward":
        rewards, kl = kl_penalized_rewards(
            scores, old_logprobs, ref_logprobs, mask, s.kl_coef, s.kl_estimator
        )
    else:
        no_kl = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
        rewards, kl = kl_penalized_rewards(scores, no_kl, no_kl, mask, 0.0, "k1")
        if needs_ref:
            kl = get_kl_estimator(s.kl_estimator)(old_logprobs, ref_logprobs) * mask
    estimate = get_advantage_estimator(s.advantage)
    advantages, returns = estimate(rewards, old_values, mask, batch.group_ids, s.gamma, s.lam)
    return Experience(
        batch, old_logprobs, old_values, ref_logprobs, advantages, returns, scores, kl
    )


@dataclass
class ShardWork:
    """One shard's experience of a step, the rollouts' examples and scores, and its weight
    (0 for a placeholder shard); `generator` shuffles its rows for the minibatches."""

    exp: Experience
    scored: list
    examples: list[Example]
    weight: float
    generator: torch.Generator


def whiten_step_advantages(work: Sequence[ShardWork]) -> list[ShardWork]:
    """This process's shards with their advantages whitened over the whole step's batch.

    The moments (count, sum, sum of squares of the real tokens' advantages) are added up over
    this process's shards (a placeholder shard, weight 0, adds none) and all-reduced over the
    processes: every shard is whitened with the batch's mean and standard deviation, as the ReFT
    code's `allgather_masked_whiten` does, so N processes equal one with grad_accum=N.
    """
    local = sum(
        w.weight * masked_moments(w.exp.advantages, w.exp.batch.response_mask) for w in work
    )
    moments = torch.tensor(distributed.all_reduce_sum(local.tolist()), dtype=torch.float64)
    whitened = []
    for w in work:
        advantages = whiten_with_moments(w.exp.advantages, w.exp.batch.response_mask, moments)
        whitened.append(
            dataclasses.replace(w, exp=dataclasses.replace(w.exp, advantages=advantages))
        )
    return whitened


def correct_engine_mismatch(
    advantages: torch.Tensor,
    old_logprobs: torch.Tensor,
    sampling_logprobs: torch.Tensor | None,
    mask: torch.Tensor,
    tis_cap: float | None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The advantages the update uses, and how far the engine that sampled was from the trainer.

    With an engine that reports its sampling log-probs (vLLM): the mean absolute per-token gap to
    the trainer's old log-probs, and with `tis_cap` the advantages weighted by truncated
    importance ratios (and the share of tokens whose ratio hit the cap).
    """
    if sampling_logprobs is None:
        return advantages, {}
    stats = {"engine_logprob_gap": masked_mean((old_logprobs - sampling_logprobs).abs(), mask)}
    if tis_cap is not None:
        weights = truncated_importance_weights(old_logprobs, sampling_logprobs, mask, tis_cap)
        advantages = advantages * weights
        stats["tis_capped_frac"] = masked_mean((weights >= tis_cap).float(), mask)
    return advantages, {key: value.item() for key, value in stats.items()}


def minibatch_loss(
    policy, exp: Experience, rows: torch.Tensor, s: RLSettings, accelerator
) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss of the rows `rows` of `exp` (policy [+ value] [+ KL]), each term averaged over
    the rows by `s.loss_agg`, and its parts."""
    policy_loss_fn = get_policy_loss(s.policy_loss)
    mb = select_rows(exp.batch, rows)
    mb_mask = mb.response_mask
    with accelerator.autocast():
        logprobs, values = forward_logprobs(policy, mb, s.temperature, with_values=s.uses_values)
    old_logprobs = logprobs.detach() if exp.old_logprobs is None else exp.old_logprobs[rows]
    advantages, engine_stats = correct_engine_mismatch(
        exp.advantages[rows], old_logprobs, mb.logprobs, mb_mask, s.tis_cap
    )
    pg_loss, pg_stats = policy_loss_fn(
        logprobs, old_logprobs, advantages, mb_mask, s.clip_range, s.loss_agg
    )
    loss = pg_loss
    mb_stats = {"policy_loss": pg_loss.item(), **{k: v.item() for k, v in pg_stats.items()}}
    mb_stats.update(engine_stats)
    if s.uses_values:
        v_loss, v_stats = value_loss(
            values, exp.old_values[rows], exp.returns[rows], mb_mask, s.value_clip_range, s.loss_agg
        )
        loss = loss + s.vf_coef * v_loss
        mb_stats["value_loss"] = v_loss.item()
        mb_stats["value_clipfrac"] = v_stats["clipfrac"].item()
    if s.kl_coef > 0 and s.kl_penalty == "loss" and exp.ref_logprobs is not None:
        kl = get_kl_estimator(s.kl_estimator)(logprobs, exp.ref_logprobs[rows])
        loss = loss + s.kl_coef * aggregate_loss(kl, mb_mask, s.loss_agg)
    return loss, mb_stats


def shuffled_minibatches(
    work: Sequence[ShardWork], split: MinibatchSplit, ppo_epochs: int
) -> tuple[list[list[torch.Tensor]], list[list[list[torch.Tensor]]]]:
    """Every shuffle first (each shard's generator, epoch by epoch), then the cut:
    `orders[epoch][shard]` and `minibatches[epoch][j][shard]`, the rows each shard puts into
    minibatch j."""
    sizes = [w.exp.batch.response_mask.size(0) for w in work]
    orders = [
        [torch.randperm(n, generator=w.generator) for w, n in zip(work, sizes, strict=True)]
        for _ in range(ppo_epochs)
    ]
    width = split.rows_per_shard
    minibatches = [
        [[order[j * width : (j + 1) * width] for order in epoch] for j in range(split.count)]
        for epoch in orders
    ]
    return orders, minibatches


def rows_count(w: ShardWork, rows: torch.Tensor, loss_agg: str) -> float:
    """What `loss_agg` averages over in the rows `rows` of shard `w`: tokens or responses."""
    return aggregation_count(w.exp.batch.response_mask[rows], loss_agg).item()


def minibatch_counts(work: Sequence[ShardWork], minibatches, loss_agg: str) -> list[float]:
    """Each minibatch's count of what `loss_agg` averages over (response tokens, or non-empty
    responses) over all shards and processes (one all-reduce)."""
    local_counts = [
        sum(
            w.weight * rows_count(w, rows, loss_agg)
            for w, rows in zip(work, minibatch, strict=True)
        )
        for epoch in minibatches
        for minibatch in epoch
    ]
    return distributed.all_reduce_sum(local_counts)


def micro_batches(
    work: Sequence[ShardWork],
    minibatch: Sequence[torch.Tensor],
    epoch_orders: Sequence[torch.Tensor],
    micro_batch_size: int | None,
) -> list[tuple[ShardWork, torch.Tensor, float]]:
    """The forward/backward passes of one minibatch on this process: (shard, rows, weight), each
    shard's rows cut into runs of at most `micro_batch_size`. A shard with no rows in this
    minibatch still takes one pass, on one row with weight 0, to join the gradient all-reduce."""
    passes = []
    for position, (w, rows) in enumerate(zip(work, minibatch, strict=True)):
        if len(rows) == 0:
            passes.append((w, epoch_orders[position][:1], 0.0))
            continue
        step = micro_batch_size or len(rows)
        passes += [(w, rows[i : i + step], w.weight) for i in range(0, len(rows), step)]
    return passes


def update_policy(
    policy,
    optimizer,
    accelerator,
    work: Experience | Sequence[ShardWork],
    s: RLSettings,
    generator: torch.Generator | None = None,
    layout: ShardLayout = SINGLE,
    split: MinibatchSplit | None = None,
) -> dict[str, float]:
    """`ppo_epochs` passes of minibatch updates over one step's experience.

    `work` is one Experience (shuffled by `generator`), or this process's shards of the step
    (`layout` and `split` say how the step is split). Each pass's loss, an average by
    `s.loss_agg` over its rows, is weighted by its rows' share of the whole minibatch's count
    over every shard and process (tokens, or responses for seq_mean), times the process count
    (DDP averages gradients over processes): the gradients add up to the one average over the
    minibatch that a single process would take.
    """
    if isinstance(work, Experience):
        work = [ShardWork(work, [], [], 1.0, generator)]
    if split is None:
        sizes = [w.exp.batch.response_mask.size(0) for w in work]
        split = split_minibatches(sum(sizes), max(sizes), s.mini_batch_size, layout.n_shards)
    orders, minibatches = shuffled_minibatches(work, split, s.ppo_epochs)
    total_counts = iter(minibatch_counts(work, minibatches, s.loss_agg))
    stats = WeightedMeans()
    for epoch, epoch_minibatches in enumerate(minibatches):
        for minibatch in epoch_minibatches:
            mb_count = next(total_counts)
            if mb_count == 0:  # no shard has rows left for this minibatch
                continue
            passes = micro_batches(work, minibatch, orders[epoch], s.micro_batch_size)
            for index, (w, rows, weight) in enumerate(passes):
                count = rows_count(w, rows, s.loss_agg)
                scale = weight * (count / mb_count) * layout.processes
                # Gradients are all-reduced once, at this process's last pass.
                last = index == len(passes) - 1
                with contextlib.nullcontext() if last else accelerator.no_sync(policy):
                    loss, mb_stats = minibatch_loss(policy, w.exp, rows, s, accelerator)
                    accelerator.backward(loss * scale)
                # One pass: the plain mean over minibatches; several: weighted by count.
                one_pass = layout.n_shards == 1 and len(passes) == 1
                stats.add(mb_stats, 1.0 if one_pass else weight * count)
            norm = accelerator.clip_grad_norm_(policy.parameters(), s.max_grad_norm)
            stats.add({"grad_norm": grad_norm_value(norm)}, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return stats.means(layout)


def step_metrics(exp: Experience, scored, update: dict[str, float]) -> dict[str, float]:
    mask = exp.batch.response_mask
    metrics = {
        "train/reward_mean": exp.scores.mean().item(),
        "train/accuracy": sum(s.correct for s in scored) / len(scored),
        "train/extracted_rate": sum(s.extracted is not None for s in scored) / len(scored),
        "train/kl": (exp.kl * mask).sum(dim=1).mean().item(),
        "train/response_length": mask.sum(dim=1).float().mean().item(),
        "train/advantage_mean": masked_mean(exp.advantages, mask).item(),
    }
    if exp.old_values is not None:
        metrics["train/explained_var"] = explained_variance(
            exp.old_values, exp.returns, mask
        ).item()
    metrics.update({f"train/{key}": value for key, value in update.items()})
    return metrics


def roll_out_shard(
    policy,
    ref_model,
    tokenizer,
    examples: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    s: RLSettings,
    accelerator,
    seed: int,
    shard: int,
    n_shards: int,
    engine: RolloutEngine = HF,
) -> ShardWork:
    """Rollouts, scores and experience of shard `shard` of a step's questions `examples`."""
    part, weight = distributed.shard_part(len(examples), shard, n_shards)
    seed = shard_seed(seed, shard)
    batch = engine.generate(
        accelerator.unwrap_model(policy),
        tokenizer,
        [make_prompt(e) for e in examples[part]],
        max_new_tokens=s.max_new_tokens,
        temperature=s.temperature,
        top_p=s.top_p,
        do_sample=True,
        num_return_sequences=s.rollouts_per_query,
        seed=seed,
    )
    rollout_examples = [e for e in examples[part] for _ in range(s.rollouts_per_query)]
    scored = scorer.score(batch.texts, rollout_examples)
    scores = torch.tensor([x.reward for x in scored], dtype=torch.float32)
    exp = make_experience(policy, ref_model, batch, scores, s)
    return ShardWork(exp, scored, rollout_examples, weight, torch.Generator().manual_seed(seed))


def rl_metrics(
    work: Sequence[ShardWork],
    update: dict[str, float],
    layout: ShardLayout,
    extra_metrics: Callable[[list[Example], torch.Tensor], dict[str, float]] | None,
) -> dict[str, float]:
    """One step's record: the rollouts' metrics over every shard and process, the update's, and
    `extra_metrics` of this process's rollouts (all of them with one shard)."""
    metrics = combine_metrics(
        [(step_metrics(w.exp, w.scored, {}), w.weight * len(w.scored)) for w in work], layout
    )
    metrics.update({f"train/{key}": value for key, value in update.items()})
    if extra_metrics is not None:
        real = [w for w in work if w.weight > 0]
        metrics.update(
            extra_metrics(
                [e for w in real for e in w.examples],
                torch.cat([w.exp.scores for w in real]) if real else torch.zeros(0),
            )
        )
    return metrics


def train_rl(
    policy,
    ref_model,
    tokenizer,
    questions: Sequence[Example],
    make_prompt: Callable[[Example], str],
    scorer: Scorer,
    s: RLSettings,
    ctx: RunContext,
    accelerator,
    stage: str,
    extra_metrics: Callable[[list[Example], torch.Tensor], dict[str, float]] | None = None,
    engine: RolloutEngine = HF,
    periodic: Periodic | None = None,
) -> dict[str, float]:
    """Run `s.steps` RL steps on `questions`, updating `policy` in place; return last metrics.
    `engine` samples the rollouts (a vLLM engine loads the policy's new weights first);
    `periodic` (the test evaluation of `budget.eval_every`) runs between steps.

    `extra_metrics(rollout_examples, scores)`, if given, adds metrics to each step's record (one
    example per rollout row, scores (B,)); PrefixRL splits the reward by prefixed and plain rows.
    """
    loop = TrainingLoop(stage, ctx, accelerator, policy, make_optimizer(policy, s))
    policy = loop.model
    world = distributed.current_world()
    layout = ShardLayout(world.size * s.grad_accum, world.size)
    my_shards = distributed.local_shards(world, s.grad_accum)
    k = s.rollouts_per_query

    def step(index: int) -> dict[str, float]:
        examples = question_batch(questions, index, s.batch_size, s.seed)
        seed = step_seed(s.seed, index)
        policy.eval()
        work = [
            roll_out_shard(
                policy,
                ref_model,
                tokenizer,
                examples,
                make_prompt,
                scorer,
                s,
                accelerator,
                seed,
                shard,
                layout.n_shards,
                engine,
            )
            for shard in my_shards
        ]
        if s.whiten_advantages:
            work = whiten_step_advantages(work)
        policy.train()
        first, end = distributed.shard_bounds(len(examples), layout.n_shards)[0]
        split = split_minibatches(
            len(examples) * k, (end - first) * k, s.mini_batch_size, layout.n_shards
        )
        update = update_policy(
            policy, loop.optimizer, accelerator, work, s, layout=layout, split=split
        )
        return rl_metrics(work, update, layout, extra_metrics)

    show = [
        Shown("reward", "train/reward_mean"),
        Shown("acc", "train/accuracy", ".2f"),
        Shown("kl", "train/kl"),
    ]
    return loop.run(s.steps, step, show, periodic=periodic)
