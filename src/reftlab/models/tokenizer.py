"""A byte-level BPE tokenizer for the embedded tiny model, trained offline on the run's own texts.

Every digit is its own token, so that ``1234`` and ``1243`` differ in one token and the model
can learn digit-wise arithmetic instead of memorising a merge per number. No special token is
added by ``tokenizer(text)``: like GPT-2-style tokenizers (SmolLM2, Qwen), a prompt encodes to
its text alone and the caller appends ``eos_token`` where a sequence ends.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
SPECIAL_TOKENS = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN]

# Bumped when the recipe below changes, so that cached tokenizers built by an older recipe are
# not reused.
RECIPE_VERSION = "1"


def _byte_alphabet_size() -> int:
    return len(pre_tokenizers.ByteLevel.alphabet())


def min_vocab_size() -> int:
    """The smallest vocabulary the recipe can build: the 256 byte symbols and the special tokens."""
    return _byte_alphabet_size() + len(SPECIAL_TOKENS)


def build_tokenizer(
    corpus: Iterable[str], vocab_size: int, save_dir: Path
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE with single-digit tokens on ``corpus`` and save it to ``save_dir``.

    The result is written with ``save_pretrained`` and read back with
    ``AutoTokenizer.from_pretrained``, so what is returned is exactly what a later run (or a user
    with plain transformers) loads from ``save_dir``. Training is deterministic for a given
    corpus and ``vocab_size``.
    """
    if vocab_size < min_vocab_size():
        raise ValueError(
            f"vocab_size={vocab_size} is too small: the byte-level alphabet and special tokens "
            f"alone take {min_vocab_size()}; set model.vocab_size to at least that"
        )
    tokenizer = Tokenizer(models.BPE())
    # Digits are split off first, so the byte-level regex (which would keep " 123" together)
    # only ever sees one digit at a time.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        # All 256 bytes, even those absent from the corpus, so that any text at evaluation time
        # encodes without an unknown token.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        padding_side="left",
    )
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(save_dir)
    return AutoTokenizer.from_pretrained(save_dir)


def hash_corpus(corpus: Iterable[str], vocab_size: int) -> str:
    """A hex digest naming one (recipe, library version, settings, corpus) combination."""
    digest = hashlib.sha256()
    header = f"recipe={RECIPE_VERSION};tokenizers={tokenizers.__version__};vocab={vocab_size};"
    digest.update(header.encode())
    for text in corpus:
        data = text.encode("utf-8")
        # Length-prefixed, so that ["ab", "c"] and ["a", "bc"] hash differently.
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def get_or_build_tokenizer(
    corpus: Iterable[str], vocab_size: int, cache_root: Path
) -> PreTrainedTokenizerFast:
    """Load the tokenizer for this corpus from ``cache_root``, building and caching it if absent.

    Safe when several processes (ranks of one job, jobs of a sweep) ask at once: each builds into
    its own temporary folder and renames it into place; a rename that loses the race is
    discarded and the winner's tokenizer is loaded.
    """
    texts = list(corpus)
    cache_root = Path(cache_root)
    final_dir = cache_root / f"tokenizer-{hash_corpus(texts, vocab_size)[:20]}"
    if (final_dir / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(final_dir)

    cache_root.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
    try:
        build_tokenizer(texts, vocab_size, build_dir)
        try:
            os.rename(build_dir, final_dir)
        except OSError:
            # Another process renamed its copy first; both were built from the same inputs.
            if not (final_dir / "tokenizer.json").is_file():
                raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return AutoTokenizer.from_pretrained(final_dir)
