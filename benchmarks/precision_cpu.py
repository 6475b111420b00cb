"""fp32 against bf16 on this CPU, for SmolLM2-135M: what `precision=auto` should pick here.

Times, in both dtypes: a forward and backward pass over 8 GSM8K solutions; 16 AdamW steps of SFT
from the same start (and the NLL they end at, so that bf16's soundness shows too); transformers'
`generate` (bf16 autocast, and bf16 weights); and the vLLM engine (`rollout.engine=vllm`) on 64
completions, twice. Prints one JSON object.

    python benchmarks/precision_cpu.py            # about 10 minutes on 2 cores
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time

import torch
from rl_setup import GSM8K_TRAIN, gsm8k_train, make_prompt

from reftlab.models.pretrained import load_packaged_gguf
from reftlab.stages.batches import collate, completion_nll, encode_pairs
from reftlab.stages.rollout import generate


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def seconds(fn, repeats: int = 2) -> float:
    """Mean seconds of ``fn`` after one untimed call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    rows = [json.loads(line) for line in GSM8K_TRAIN.read_text().splitlines()[:64]]
    questions = gsm8k_train()[:64]
    prompts = [make_prompt(e) for e in questions]
    solutions = [" " + r["answer"].replace("####", "The answer is") for r in rows]
    model, tokenizer = load_packaged_gguf()
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    encoded = encode_pairs(tokenizer, prompts, solutions, 512)
    batch = collate(encoded[:8], tokenizer.pad_token_id)
    result: dict = {"cpu_bf16": "avx512_bf16" in open("/proc/cpuinfo").read()}
    for dtype in ("fp32", "bf16"):
        model.load_state_dict(start_state)
        model.train()

        def forward_backward(dtype=dtype):
            with autocast(dtype):
                loss = completion_nll(model, batch)
            loss.backward()
            model.zero_grad()

        result[f"forward_backward_8x{batch['input_ids'].shape[1]}_{dtype}_s"] = seconds(
            forward_backward
        )
        model.eval()

        def sample(dtype=dtype):
            with autocast(dtype):
                generate(model, tokenizer, prompts[:8], max_new_tokens=64, seed=0)

        result[f"generate_8x64_{dtype}_s"] = seconds(sample, 1)
        model.load_state_dict(start_state)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
        start = time.perf_counter()
        for step in range(16):
            with autocast(dtype):
                loss = completion_nll(
                    model, collate(encoded[step * 4 : step * 4 + 4], tokenizer.pad_token_id)
                )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        result[f"sft_16_steps_{dtype}_s"] = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            result[f"sft_16_steps_{dtype}_nll_after"] = completion_nll(model, batch).item()
        print(json.dumps(result), flush=True)
    model.load_state_dict(start_state)
    bf16_weights = load_packaged_gguf(dtype="bfloat16")[0].eval()
    result["generate_8x64_bf16_weights_s"] = seconds(
        lambda: generate(bf16_weights, tokenizer, prompts[:8], max_new_tokens=64, seed=0), 1
    )
    if importlib.util.find_spec("vllm"):
        from reftlab.stages.engines import VLLMSettings
        from reftlab.stages.vllm_engine import VLLMEngine

        for dtype in ("float32", "bfloat16"):
            engine = VLLMEngine(VLLMSettings(dtype=dtype))
            engine.generate(model, tokenizer, prompts[:1], 4, do_sample=False)  # start it
            rates = []
            for seed in (0, 1):
                start = time.perf_counter()
                out = engine.generate(
                    model, tokenizer, prompts[:8], 128, num_return_sequences=8, seed=seed
                )
                rates.append(out.response_mask.sum().item() / (time.perf_counter() - start))
            result[f"vllm_{dtype}_new_tokens_per_s"] = rates
            engine.close()
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
