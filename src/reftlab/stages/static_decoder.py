"""reftlab's own sampler for Llama-family models (`rollout.engine=static`).

transformers' ``generate`` runs the model's ``forward`` once per new token, and on a small model
on a CPU most of that call is not arithmetic: it builds a 4-D attention mask, grows the KV cache
by concatenation, calls every projection on its own, and ``multinomial`` draws one exponential
per vocabulary entry. This decoder runs the same layers with:

- K and V written in place into buffers sized for the prompt plus ``max_new_tokens``;
- q, k and v from one matrix product (their weights stacked once per call), gate and up alike;
- one-token attention as two small matrix products against an additive key mask (grouped-query
  heads by a reshape, not by repeating K and V); the prompt's pass through SDPA;
- sampling by the inverse CDF: one uniform number per row and token.

It reads the weights at every call, so after an optimizer step it samples the new policy with
nothing to sync, as ``hf`` does. What it computes is the model's own forward pass: its greedy
completions equal ``generate``'s token for token, and its sampling log-probs equal the
trainer's (``tests/stages/test_rollout.py``). It supports the Llama layout (Llama, SmolLM2,
Mistral, Qwen2: the model types in ``SUPPORTED``); anything else is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from reftlab.errors import ReftlabError
from reftlab.models.value import positions_from_mask

SUPPORTED = ("llama", "mistral", "qwen2")


def check_supported(lm: PreTrainedModel) -> None:
    """Raise one line unless ``lm`` has the Llama layout this decoder runs."""
    model_type = getattr(lm.config, "model_type", type(lm).__name__)
    if model_type not in SUPPORTED:
        raise ReftlabError(
            f"rollout.engine=static runs Llama-family models ({', '.join(SUPPORTED)}); "
            f"this model is {model_type}: use rollout.engine=hf or rollout.engine=vllm"
        )


@dataclass(frozen=True)
class _Layer:
    """One decoder layer's weights as the decoder uses them (stacked where it fuses products)."""

    attn_norm: nn.Module
    qkv: torch.Tensor
    qkv_bias: torch.Tensor | None
    out: nn.Linear
    mlp_norm: nn.Module
    gate_up: torch.Tensor
    gate_up_bias: torch.Tensor | None
    down: nn.Linear
    act: nn.Module
    scaling: float


def _stack(*linears: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = torch.cat([linear.weight for linear in linears])
    if all(linear.bias is None for linear in linears):
        return weight, None
    biases = [
        linear.bias if linear.bias is not None else weight.new_zeros(linear.out_features)
        for linear in linears
    ]
    return weight, torch.cat(biases)


def _layers(lm: PreTrainedModel) -> list[_Layer]:
    layers = []
    for layer in lm.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        qkv, qkv_bias = _stack(attn.q_proj, attn.k_proj, attn.v_proj)
        gate_up, gate_up_bias = _stack(mlp.gate_proj, mlp.up_proj)
        layers.append(
            _Layer(
                layer.input_layernorm, qkv, qkv_bias, attn.o_proj,
                layer.post_attention_layernorm, gate_up, gate_up_bias, mlp.down_proj,
                mlp.act_fn, attn.scaling,
            )
        )  # fmt: skip
    return layers


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding in the Llama (rotate-half) layout."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


class _Decoder:
    """The KV buffers and layer weights of one chunk of rows, and one pass over some positions."""

    def __init__(self, lm: PreTrainedModel, positions: torch.Tensor, total_length: int) -> None:
        config = lm.config
        self.lm = lm
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        window = getattr(config, "sliding_window", None)
        if (
            window is not None
            and getattr(config, "use_sliding_window", True)
            and window < total_length
        ):
            raise ReftlabError(
                f"rollout.engine=static has no sliding-window attention; this model's window "
                f"({window}) is shorter than prompt + completion ({total_length} tokens): "
                "use rollout.engine=hf"
            )
        self.layers = _layers(lm)
        body = lm.model
        cos, sin = body.rotary_emb(body.embed_tokens.weight, positions)  # (B, T, head_dim)
        self.cos, self.sin = cos[:, None], sin[:, None]  # broadcast over heads
        rows = positions.shape[0]
        shape = (len(self.layers), rows, self.kv_heads, total_length, self.head_dim)
        dtype = body.embed_tokens.weight.dtype
        if torch.is_autocast_enabled(positions.device.type):
            dtype = torch.get_autocast_dtype(positions.device.type)
        self.keys = positions.new_zeros(shape, dtype=dtype)
        self.values = positions.new_zeros(shape, dtype=dtype)

    def logits(self, ids: torch.Tensor, start: int, mask: torch.Tensor) -> torch.Tensor:
        """Next-token logits ``(B, V)`` after the tokens ``ids`` ``(B, L)`` at positions
        ``start .. start + L - 1``, which attend to the cached keys under ``mask``: boolean
        ``(B, 1, L, start + L)`` for the prompt's pass, additive ``(B, 1, 1, start + 1)`` for
        one token."""
        rows, length = ids.shape
        stop = start + length
        h, kv, d = self.heads, self.kv_heads, self.head_dim
        cos, sin = self.cos[:, :, start:stop], self.sin[:, :, start:stop]
        hidden = self.lm.model.embed_tokens(ids)
        for i, layer in enumerate(self.layers):
            qkv = F.linear(layer.attn_norm(hidden), layer.qkv, layer.qkv_bias)
            qkv = qkv.view(rows, length, h + 2 * kv, d).transpose(1, 2)
            query = _rotate(qkv[:, :h], cos, sin)
            self.keys[i, :, :, start:stop] = _rotate(qkv[:, h : h + kv], cos, sin)
            self.values[i, :, :, start:stop] = qkv[:, h + kv :]
            keys, values = self.keys[i, :, :, :stop], self.values[i, :, :, :stop]
            if length == 1:
                # (B, kv, group, d) @ (B, kv, d, T): each K/V head serves its group of queries.
                query = query.reshape(rows, kv, h // kv, d)
                scores = torch.matmul(query, keys.transpose(-1, -2)) * layer.scaling + mask
                attended = torch.matmul(torch.softmax(scores, dim=-1), values).view(rows, h, 1, d)
            else:
                attended = F.scaled_dot_product_attention(
                    query, keys, values, attn_mask=mask, scale=layer.scaling, enable_gqa=h != kv
                )
            attended = attended.transpose(1, 2).reshape(rows, length, h * d)
            hidden = hidden + layer.out(attended)
            gate, up = F.linear(layer.mlp_norm(hidden), layer.gate_up, layer.gate_up_bias).chunk(
                2, -1
            )
            hidden = hidden + layer.down(layer.act(gate) * up)
        return self.lm.lm_head(self.lm.model.norm(hidden[:, -1]))


@torch.no_grad()
def decode(
    lm: PreTrainedModel, query_ids: torch.Tensor, query_mask: torch.Tensor, s
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """New tokens ``(B, steps)`` (pad after a row's EOS) and, when ``s.return_logprobs``, their
    sampling log-probs, for ``s.num_return_sequences`` rows per left-padded prompt; ``steps``
    stops early when every row has ended. ``s`` carries the sampling settings
    (:class:`reftlab.stages.rollout._Sampling`)."""
    check_supported(lm)
    query_ids = query_ids.repeat_interleave(s.num_return_sequences, dim=0)
    mask = query_mask.repeat_interleave(s.num_return_sequences, dim=0).bool()
    rows, prompt_length = query_ids.shape
    total = prompt_length + s.max_new_tokens
    prompt_positions = positions_from_mask(mask.long())
    steps = torch.arange(1, s.max_new_tokens + 1, device=mask.device)
    positions = torch.cat([prompt_positions, prompt_positions[:, -1:] + steps], dim=1)
    decoder = _Decoder(lm, positions, total)

    causal = torch.ones(prompt_length, prompt_length, dtype=torch.bool, device=mask.device).tril()
    # A left pad attends to itself only: its output is never read, and a row of -inf is NaN.
    own = torch.eye(prompt_length, dtype=torch.bool, device=mask.device)
    logits = decoder.logits(query_ids, 0, (causal & mask[:, None, None, :]) | own)
    key_mask = torch.full((rows, 1, 1, total), float("-inf"), device=mask.device)
    key_mask[:, 0, 0, :prompt_length].masked_fill_(mask, 0.0)
    key_mask = key_mask.to(decoder.keys.dtype)

    eos = torch.tensor(s.eos_token_ids, device=mask.device)
    finished = torch.zeros(rows, dtype=torch.bool, device=mask.device)
    tokens, logprobs = [], []
    for step in range(s.max_new_tokens):
        logits = logits.float()
        token = sample(logits, s.temperature, s.top_p, s.do_sample)
        if s.return_logprobs:
            scaled = logits / s.temperature
            logprobs.append(scaled.gather(-1, token[:, None]).squeeze(-1) - scaled.logsumexp(-1))
        # Rows that already ended keep producing pad tokens, as in transformers' generate.
        token = torch.where(finished, s.pad_token_id, token)
        tokens.append(token)
        finished |= torch.isin(token, eos)
        if finished.all() or step == s.max_new_tokens - 1:
            break
        position = prompt_length + step
        key_mask[:, 0, 0, position] = 0.0
        logits = decoder.logits(token[:, None], position, key_mask[..., : position + 1])
    return torch.stack(tokens, dim=1), torch.stack(logprobs, dim=1) if logprobs else None


def sample(logits: torch.Tensor, temperature: float, top_p: float, do_sample: bool) -> torch.Tensor:
    """Next tokens ``(B,)`` from logits ``(B, V)``: argmax, or a draw from the tempered
    (nucleus-truncated) distribution by its inverse CDF, from the global RNG."""
    if not do_sample:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        probs = nucleus(probs, top_p)
    cdf = probs.cumsum(dim=-1)
    # u is uniform on [0, total mass); token i is drawn when cdf[i-1] <= u < cdf[i].
    u = torch.rand(probs.shape[0], 1, device=probs.device, dtype=cdf.dtype) * cdf[:, -1:]
    return torch.searchsorted(cdf, u, right=True).clamp_(max=probs.shape[-1] - 1).squeeze(-1)


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """``probs`` with all but the most likely tokens whose mass reaches ``top_p`` set to 0
    (the most likely token is always kept); not renormalised."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)
