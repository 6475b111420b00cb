from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, OPTConfig, OPTForCausalLM

from reftlab.models import (
    PolicyWithValue,
    disable_dropout,
    make_reference,
    positions_from_mask,
    unwrap_policy,
)


def _batch(tokenizer):
    rows = [tokenizer("Tom has 3 apples.")["input_ids"], tokenizer("Ann has 12")["input_ids"]]
    width = max(map(len, rows))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


def _randomise_head(model: PolicyWithValue, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.value_head.weight.copy_(
            torch.randn(model.value_head.weight.shape, generator=generator)
        )
        model.value_head.bias.fill_(0.5)


def test_positions_start_at_first_real_token():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert positions_from_mask(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("value_model", ["head", "separate"])
def test_shapes_and_zero_initial_values(tokenizer, build_small, value_model):
    policy = build_small()
    model = PolicyWithValue(policy, value_model)
    ids, mask = _batch(tokenizer)
    logits, values = model(ids, mask)
    assert logits.shape == (*ids.shape, len(tokenizer))
    assert values.shape == ids.shape
    assert values.dtype == torch.float32
    assert torch.equal(values, torch.zeros_like(values))
    expected = policy(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask))
    torch.testing.assert_close(logits, expected.logits)


def test_logits_to_keep_slices_the_last_positions(tokenizer, build_small):
    model = PolicyWithValue(build_small())
    ids, mask = _batch(tokenizer)
    full, values = model(ids, mask)
    last3, values3 = model(ids, mask, logits_to_keep=3)
    torch.testing.assert_close(last3, full[:, -3:])
    torch.testing.assert_close(values3, values)


def test_head_shares_backbone_separate_does_not(tokenizer, build_small):
    ids, mask = _batch(tokenizer)
    for value_model, backbone_gets_grad in [("head", True), ("separate", False)]:
        model = PolicyWithValue(build_small(), value_model)
        _randomise_head(model)
        _, values = model(ids, mask)
        values.pow(2).mean().backward()
        policy_grad = model.policy.model.layers[0].mlp.up_proj.weight.grad
        assert (policy_grad is not None and policy_grad.abs().sum() > 0) == backbone_gets_grad
        assert model.value_head.weight.grad.abs().sum() > 0
    separate = PolicyWithValue(build_small(), "separate")
    policy_ids = {id(p) for p in separate.policy.parameters()}
    assert not policy_ids & {id(p) for p in separate.value_backbone.parameters()}


def test_unknown_value_model(tokenizer, build_small):
    with pytest.raises(ValueError, match="known: head, separate"):
        PolicyWithValue(build_small(), "shared")


def test_reference_is_a_frozen_independent_copy(tokenizer, build_small):
    model = PolicyWithValue(build_small())
    model.train()
    reference = make_reference(model)
    assert not isinstance(reference, PolicyWithValue)
    assert not reference.training
    assert all(not p.requires_grad for p in reference.parameters())
    assert all(p.requires_grad for p in model.parameters())
    ids, mask = _batch(tokenizer)
    before = reference(input_ids=ids, attention_mask=mask).logits
    with torch.no_grad():
        for p in model.policy.parameters():
            p.add_(0.1)
    torch.testing.assert_close(reference(input_ids=ids, attention_mask=mask).logits, before)
    assert unwrap_policy(model) is model.policy
    assert unwrap_policy(reference) is reference


@pytest.mark.parametrize("value_model", ["head", "separate"])
def test_save_load_round_trip(tokenizer, build_small, tmp_path, value_model):
    model = PolicyWithValue(build_small(), value_model)
    _randomise_head(model)
    if model.value_backbone is not None:
        with torch.no_grad():  # so that a mix-up of the two backbones would show
            model.value_backbone.norm.weight.mul_(2.0)
    ids, mask = _batch(tokenizer)
    logits, values = model(ids, mask)

    model.save_pretrained(tmp_path, tokenizer=tokenizer)
    loaded = PolicyWithValue.from_pretrained(tmp_path)
    assert loaded.value_model == value_model
    loaded_logits, loaded_values = loaded(ids, mask)
    assert torch.equal(loaded_logits, logits)
    assert torch.equal(loaded_values, values)
    assert values.abs().sum() > 0

    # Plain transformers reads the same folder as an ordinary causal LM.
    plain = AutoModelForCausalLM.from_pretrained(tmp_path)
    positions = positions_from_mask(mask)
    plain_logits = plain(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    assert torch.equal(plain_logits, logits)


def test_load_without_value_head_fails_clearly(tokenizer, build_small, tmp_path):
    build_small().save_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match="value_head.pt is missing"):
        PolicyWithValue.from_pretrained(tmp_path)


def test_disable_dropout_makes_train_mode_deterministic(tokenizer):
    config = OPTConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, ffn_dim=64,
        num_attention_heads=4, word_embed_proj_dim=32, max_position_embeddings=64,
        dropout=0.3, attention_dropout=0.3, activation_dropout=0.3,
    )  # fmt: skip
    model = OPTForCausalLM(config).train()
    ids, mask = _batch(tokenizer)
    first = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.equal(first, model(input_ids=ids, attention_mask=mask).logits)
    disable_dropout(model)
    assert model.training
    first = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(first, model(input_ids=ids, attention_mask=mask).logits)


@pytest.mark.parametrize("value_model", ["head", "separate"])
def test_value_lr_gives_the_critic_its_own_learning_rate(tokenizer, build_small, value_model):
    from dataclasses import replace

    from reftlab.stages.rl import RLSettings, make_optimizer

    model = PolicyWithValue(build_small(), value_model)
    base = RLSettings(
        steps=1,
        batch_size=2,
        mini_batch_size=2,
        rollouts_per_query=1,
        ppo_epochs=1,
        lr=1e-5,
        advantage="gae",
        policy_loss="ppo_clip",
        kl_coef=0.0,
        kl_estimator="k1",
        kl_penalty="reward",
        gamma=1.0,
        lam=0.95,
        clip_range=0.2,
        value_clip_range=0.2,
        vf_coef=1.0,
        whiten_advantages=False,
        temperature=1.0,
        top_p=1.0,
        max_new_tokens=4,
        seed=0,
    )
    single = make_optimizer(model, base)
    assert [group["lr"] for group in single.param_groups] == [1e-5]

    split = make_optimizer(model, replace(base, value_lr=1e-3))
    actor, critic = split.param_groups
    assert (actor["lr"], critic["lr"]) == (1e-5, 1e-3)
    critic_ids = {id(p) for p in critic["params"]}
    assert critic_ids == {id(p) for p in model.critic_parameters()}
    assert id(model.value_head.weight) in critic_ids
    policy_ids = {id(p) for p in model.policy.parameters()}
    assert not critic_ids & policy_ids  # the shared backbone learns at the policy's rate
    assert len(actor["params"]) + len(critic["params"]) == len(list(model.parameters()))
