"""A policy with a value head (ReFT's critic), its frozen reference copy, and their checkpoints.

ReFT (Luong et al., 2024) puts a linear value head on the policy's last hidden state
(``value_model="head"``) and, as an ablation, gives the critic its own copy of the backbone
(``value_model="separate"``): twice the memory, no sharing of gradients between actor and critic.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from reftlab.models.pretrained import resolve_dtype
from reftlab.rl.registry import VALUE_MODELS

VALUE_HEAD_FILE = "value_head.pt"
VALUE_BACKBONE_DIR = "value_model"


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids ``(B, T)`` that start at 0 on each row's first real token (left padding).

    The same positions that ``generate`` uses, so that a later forward pass over a left-padded
    rollout sees each token at the position it was sampled at.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyWithValue(nn.Module):
    """A causal LM ``policy`` and a scalar value per position, from one forward call.

    The head's weight and bias start at zero, so the first value estimates are 0 and the value
    loss cannot push large random gradients into a shared backbone. The head is kept in float32
    whatever the policy's dtype.
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        value_model: str = "head",
        value_backbone: PreTrainedModel | None = None,
    ) -> None:
        super().__init__()
        if value_model not in VALUE_MODELS:
            raise ValueError(
                f"unknown value_model {value_model!r}; known: {', '.join(VALUE_MODELS)}"
            )
        self.policy = policy
        self.value_model = value_model
        self.value_backbone = None
        if value_model == "separate":
            if value_backbone is None:
                value_backbone = copy.deepcopy(policy.base_model)
            self.value_backbone = value_backbone
        hidden_size = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden_size, 1, device=policy.device, dtype=torch.float32)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``(B, T, V)`` and values ``(B, T)``; position ``t`` sees tokens ``<= t``.

        ``position_ids`` default to :func:`positions_from_mask`, right for left-padded batches.
        ``logits_to_keep=N > 0`` computes logits for the last N positions only, ``(B, N, V)``
        (transformers' convention), which saves the vocabulary-sized tensor over the prompt.
        """
        if position_ids is None:
            position_ids = positions_from_mask(attention_mask)
        shared = self.value_backbone is None
        # Passed only when asked for: models with custom code may not take the argument.
        extra = {"logits_to_keep": logits_to_keep} if logits_to_keep else {}
        outputs = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=shared,
            use_cache=False,
            **extra,
        )
        if shared:
            hidden = outputs.hidden_states[-1]
        else:
            hidden = self.value_backbone(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            ).last_hidden_state
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return outputs.logits, values

    def critic_parameters(self) -> list[nn.Parameter]:
        """The parameters only the critic uses: the head, and its own backbone if it has one."""
        backbone = [] if self.value_backbone is None else list(self.value_backbone.parameters())
        return list(self.value_head.parameters()) + backbone

    def save_pretrained(
        self, directory: Path, tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        """Write the LM as a plain transformers checkpoint plus ``value_head.pt`` beside it.

        ``AutoModelForCausalLM.from_pretrained(directory)`` loads the policy alone; the critic's
        own backbone (``value_model="separate"``) goes to the ``value_model/`` subfolder.
        """
        directory = Path(directory)
        self.policy.save_pretrained(directory)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)
        torch.save(self.value_head.state_dict(), directory / VALUE_HEAD_FILE)
        if self.value_backbone is not None:
            self.value_backbone.save_pretrained(directory / VALUE_BACKBONE_DIR)

    @classmethod
    def from_pretrained(
        cls, directory: Path, dtype: str | torch.dtype = "float32"
    ) -> PolicyWithValue:
        """Load what :meth:`save_pretrained` wrote; the value model kind is read from the files."""
        directory = Path(directory)
        head_path = directory / VALUE_HEAD_FILE
        if not head_path.is_file():
            raise FileNotFoundError(
                f"{head_path} is missing: {directory} is not a policy-with-value checkpoint"
            )
        policy = AutoModelForCausalLM.from_pretrained(directory, dtype=resolve_dtype(dtype))
        backbone_dir = directory / VALUE_BACKBONE_DIR
        backbone = None
        if backbone_dir.is_dir():
            backbone = AutoModel.from_pretrained(backbone_dir, dtype=resolve_dtype(dtype))
        model = cls(policy, "separate" if backbone is not None else "head", backbone)
        state = torch.load(head_path, map_location=policy.device, weights_only=True)
        model.value_head.load_state_dict(state)
        return model


def disable_dropout(model: nn.Module) -> None:
    """Set every dropout probability in ``model`` to 0, in place.

    RL fine-tuning compares log-probs of the same tokens across forward passes (sampling, old,
    new, reference); dropout would make them differ by noise alone, so the policy and critic
    run without it even in train mode, as TRL does.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.p = 0.0
        # Many transformers layers keep their rate in a float attribute and call the functional
        # dropout (Llama's attention_dropout, OPT's dropout and activation_dropout).
        for name, value in vars(module).items():
            if "dropout" in name and isinstance(value, float):
                setattr(module, name, 0.0)


def unwrap_policy(model: nn.Module) -> PreTrainedModel:
    """The causal LM inside ``model`` (itself if it is one): what generation and the KL use."""
    return model.policy if isinstance(model, PolicyWithValue) else model


def make_reference(model: nn.Module) -> PreTrainedModel:
    """A frozen copy of the policy LM (without any value head): the KL anchor of PPO."""
    reference = copy.deepcopy(unwrap_policy(model))
    reference.eval()
    reference.requires_grad_(False)
    return reference
