from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from reftlab.models import build_tokenizer, get_or_build_tokenizer
from reftlab.models import tokenizer as tokenizer_module
from reftlab.models.tokenizer import min_vocab_size


def test_round_trip_through_save_dir(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    texts = ["Tom has 12 apples and buys 305 more.", "héllo ☃ 42", "  two  spaces\nnewline"]
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert reloaded(text)["input_ids"] == ids
        # Byte-level: any text, even characters never seen in training, decodes back exactly.
        assert reloaded.decode(ids) == text
    assert reloaded.padding_side == "left"
    assert (reloaded.pad_token, reloaded.bos_token, reloaded.eos_token) == ("<pad>", "<s>", "</s>")


def test_special_tokens_distinct_and_not_added_to_plain_text(tokenizer):
    special = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    assert len(special) == 3
    ids = tokenizer("The answer is 7.")["input_ids"]
    assert not special & set(ids)
    # An EOS written in text is recognised as the special token, and dropped by decode.
    assert tokenizer("7</s>")["input_ids"][-1] == tokenizer.eos_token_id
    assert tokenizer.decode(tokenizer("7</s>")["input_ids"], skip_special_tokens=True) == "7"


def test_vocab_learned_merges_within_budget(tokenizer):
    # 256 byte symbols + 3 special tokens, then merges learned from the corpus, up to 400.
    assert 256 + 3 < len(tokenizer) <= 400
    # A frequent corpus word (with its leading space, as in running text) is one token.
    assert len(tokenizer(" apples")["input_ids"]) == 1


def test_each_digit_is_its_own_token(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("Tom has 12345 + 678 = 13023")["input_ids"])
    digit_tokens = [t for t in tokens if any(c.isdigit() for c in t)]
    assert digit_tokens == list("1234567813023")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=-(10**9), max_value=10**9), min_size=1, max_size=4))
def test_numbers_split_into_single_digits(tokenizer, numbers):
    text = "We add " + " + ".join(str(n) for n in numbers) + "."
    tokens = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
    for token in tokens:
        if any(c.isdigit() for c in token):
            assert len(token) == 1, token
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text


def test_build_is_deterministic(corpus, tmp_path):
    first = build_tokenizer(corpus, 400, tmp_path / "a")
    second = build_tokenizer(corpus, 400, tmp_path / "b")
    model_a = json.loads((tmp_path / "a" / "tokenizer.json").read_text())["model"]
    model_b = json.loads((tmp_path / "b" / "tokenizer.json").read_text())["model"]
    assert model_a["vocab"] == model_b["vocab"]
    assert model_a["merges"] == model_b["merges"]
    assert first.get_vocab() == second.get_vocab()


def test_too_small_vocab_is_rejected(corpus, tmp_path):
    assert min_vocab_size() == 256 + 3
    with pytest.raises(ValueError, match="alone take 259"):
        build_tokenizer(corpus, 258, tmp_path)


def test_cache_builds_once_and_keys_on_corpus_and_size(corpus, tmp_path, monkeypatch):
    calls = []
    real_build = tokenizer_module.build_tokenizer

    def counting_build(*args):
        calls.append(args[1])
        return real_build(*args)

    monkeypatch.setattr(tokenizer_module, "build_tokenizer", counting_build)
    first = get_or_build_tokenizer(corpus, 400, tmp_path)
    again = get_or_build_tokenizer(iter(corpus), 400, tmp_path)  # any iterable, same content
    assert calls == [400]
    assert again.get_vocab() == first.get_vocab()
    get_or_build_tokenizer(corpus, 300, tmp_path)
    get_or_build_tokenizer(corpus[:-1], 400, tmp_path)
    assert calls == [400, 300, 400]
    assert len([p for p in tmp_path.iterdir() if p.name.startswith("tokenizer-")]) == 3


def test_cache_race_keeps_the_winner_and_cleans_up(corpus, tmp_path, monkeypatch):
    real_build = tokenizer_module.build_tokenizer
    state = {"raced": False}

    def build_while_another_process_finishes(texts, vocab_size, save_dir):
        built = real_build(texts, vocab_size, save_dir)
        if not state["raced"]:
            # Another process completes the same build and renames it into place first.
            state["raced"] = True
            get_or_build_tokenizer(texts, vocab_size, tmp_path)
        return built

    monkeypatch.setattr(tokenizer_module, "build_tokenizer", build_while_another_process_finishes)
    loaded = get_or_build_tokenizer(corpus, 400, tmp_path)
    assert state["raced"]
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith("tokenizer-")
    assert (
        loaded("The answer is 42.")["input_ids"]
        == real_build(corpus, 400, tmp_path / "fresh")("The answer is 42.")["input_ids"]
    )
