"""The LM side of the reasons benchmark: every LM writer's raw output for a list of prompts.

Imports only the model code (no database), so it runs here (bench/reasons.py) or on a lent GPU
(bench/reasons_gpu.py) over prompts exported from here.
"""

import asyncio
import os
import time
from pathlib import Path

from tqdm import tqdm

from app.reasons.local_lm import TransformersGenerator, load_lm
from app.reasons.writers import Generation
from app.serving.inference import InferencePool

BATCH = 16
ZERO_SHOT, FEW_SHOT, FINE_TUNED = "base zero-shot", "base few-shot (3 examples)", "fine-tuned"


def run_batch(generator: TransformersGenerator, prompts: list[str]) -> list[Generation]:
    """One batch as the service runs it: in the generator's own thread, on every core."""
    return asyncio.run(generator.generate(prompts))


def generate_all(
    generator: TransformersGenerator, prompts: list[str], label: str = "reasons"
) -> list[Generation]:
    outputs: list[Generation] = []
    with tqdm(total=len(prompts), desc=label, unit="reason") as bar:
        for first in range(0, len(prompts), BATCH):
            outputs += run_batch(generator, prompts[first : first + BATCH])
            bar.update(len(prompts[first : first + BATCH]))
    return outputs


def lm_writers(
    base: Path,
    adapter: Path,
    prompts: list[str],
    few_shot: tuple[tuple[str, str], ...],
    max_new_tokens: int,
    progress: bool = True,
) -> tuple[dict[str, list[Generation]], TransformersGenerator]:
    """Outputs of the base model (zero- and few-shot) and of base + adapter, and the
    fine-tuned generator (for speed measurements)."""
    pool = InferencePool(1, 1, torch_threads=os.cpu_count())
    outputs = {}
    model, tokenizer, name = load_lm(base, None)
    for writer, shots in ((ZERO_SHOT, ()), (FEW_SHOT, few_shot)):
        started = time.perf_counter()
        generator = TransformersGenerator(model, tokenizer, name, pool, max_new_tokens, None, shots)
        outputs[writer] = generate_all(generator, prompts, writer)
        if progress:
            print(f"{writer}: {time.perf_counter() - started:.0f} s", flush=True)
    model, tokenizer, name = load_lm(base, adapter)
    tuned = TransformersGenerator(model, tokenizer, name, pool, max_new_tokens)
    started = time.perf_counter()
    outputs[FINE_TUNED] = generate_all(tuned, prompts, FINE_TUNED)
    if progress:
        print(f"{FINE_TUNED}: {time.perf_counter() - started:.0f} s", flush=True)
    return outputs, tuned


def speed(
    generator: TransformersGenerator, prompts: list[str], sizes: tuple[int, ...] = (1, 8, 16)
) -> dict[int, float]:
    """Reasons per second at each batch size, after a warm-up batch of that size (on a GPU the
    first batch of a new shape also sets up its kernels); real outputs, so rows stop at their
    end token as in serving."""
    rates = {}
    for size in sizes:
        rounds = max(1, 16 // size)
        batches = [
            [prompts[(r * size + i) % len(prompts)] for i in range(size)] for r in range(rounds)
        ]
        run_batch(generator, batches[-1])
        started = time.perf_counter()
        for batch in batches:
            run_batch(generator, batch)
        rates[size] = rounds * size / (time.perf_counter() - started)
    return rates
