"""Shared fixtures: a tokenizer trained on synthetic word problems, and tiny models built on it."""

from __future__ import annotations

import random

import pytest
import torch

from reftlab.models import build_tiny_model, build_tokenizer


def make_corpus(count: int = 200, seed: int = 0) -> list[str]:
    """Synthetic word problems with their solutions, like the embedded arith data set."""
    rng = random.Random(seed)
    names = ["Tom", "Ann", "Lee", "Mia", "Sam"]
    items = ["apples", "pens", "coins", "books", "cards"]
    texts = []
    for _ in range(count):
        a, b = rng.randint(1, 999), rng.randint(1, 999)
        name, item = rng.choice(names), rng.choice(items)
        texts.append(
            f"{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?\n"
            f"{name} has {a} + {b} = {a + b} {item}. The answer is {a + b}."
        )
    return texts


# Prompts the trained fixture model completes with a short answer and then EOS.
TRAINED_PAIRS = [
    ("Q: 2 + 3 = ", "5"),
    ("Q: 10 + 4 = ", "14"),
    ("Q: 7 + 8 = ", "15"),
    ("Q: Tom has 3 apples and 4 pens. ", "7"),
]


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Run these tests on one intra-op thread.

    On a small shared machine, torch's default of one thread per core spins against the other
    processes and makes tiny-model steps up to a hundred times slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="session")
def tokenizer(corpus, tmp_path_factory):
    return build_tokenizer(corpus, vocab_size=400, save_dir=tmp_path_factory.mktemp("tok"))


def _build_small(tokenizer, seed: int = 0):
    return build_tiny_model(
        tokenizer,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        seed=seed,
    )


@pytest.fixture()
def build_small(tokenizer):
    """A factory of fresh, untrained small models: ``build_small(seed=0)``."""
    return lambda seed=0: _build_small(tokenizer, seed)


@pytest.fixture(scope="session")
def trained_pairs() -> list[tuple[str, str]]:
    return list(TRAINED_PAIRS)


@pytest.fixture(scope="session")
def trained_model(tokenizer):
    """A tiny model overfitted so that greedy decoding of ``TRAINED_PAIRS`` prompts ends in EOS.

    Treat as read-only: it is shared by the whole session.
    """
    return fit_trained_pairs(_build_small(tokenizer, seed=1), tokenizer)


def fit_trained_pairs(model, tokenizer):
    """``model`` overfitted on ``TRAINED_PAIRS`` (answers then EOS), in eval mode."""
    prompts = [tokenizer(prompt)["input_ids"] for prompt, _ in TRAINED_PAIRS]
    answers = [
        tokenizer(answer)["input_ids"] + [tokenizer.eos_token_id] for _, answer in TRAINED_PAIRS
    ]
    width = max(len(p) + len(a) for p, a in zip(prompts, answers, strict=True))
    # Right padding; labels -100 on prompt and padding, so only answers and EOS are learned.
    input_ids, labels, attention_mask = [], [], []
    for prompt, answer in zip(prompts, answers, strict=True):
        pad = width - len(prompt) - len(answer)
        input_ids.append(prompt + answer + [tokenizer.pad_token_id] * pad)
        labels.append([-100] * len(prompt) + answer + [-100] * pad)
        attention_mask.append([1] * (len(prompt) + len(answer)) + [0] * pad)
    input_ids, labels = torch.tensor(input_ids), torch.tensor(labels)
    attention_mask = torch.tensor(attention_mask)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model.train()
        for _ in range(150):
            loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    assert loss.item() < 0.05, f"fixture model did not fit its examples (loss {loss.item():.3f})"
    return model
