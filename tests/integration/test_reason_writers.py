"""The LM reason writers for real: the `openai` writer against a small local server that speaks
the chat-completions protocol (over HTTP, through the whole API), and the fine-tuned local LM."""

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from redis.asyncio import Redis

from app.config import PROJECT_ROOT, Settings
from app.main import create_app
from tests.conftest import REDIS_URL, TinyWorld
from tests.integration.test_api import AS_OF, shoppers_by_baskets
from tests.integration.test_health import client_for

SERVED = "Picked for you after your [ITEM1]."


class CompletionServer:
    """An OpenAI-compatible chat-completions server with scripted answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answer = SERVED
        self.always = False  # answer `answer` to every prompt, not only those with [ITEM1]
        self.status = 200
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def complete(request: Request) -> Any:
            body = await request.json()
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            if self.status != 200:
                return _error(self.status)
            prompt = body["messages"][-1]["content"]
            text = self.answer if self.always or "[ITEM1]" in prompt else "Recommended for you."
            return {
                "id": "cmpl-1", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": text}}],
            }  # fmt: skip

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _error(status: int) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": {"message": "overloaded"}}, status_code=status)


@pytest.fixture(scope="module")
def completions() -> Iterator[CompletionServer]:
    server = CompletionServer()
    thread = threading.Thread(target=server.server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield server
    server.server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def openai_settings(tiny_world: TinyWorld, completions: CompletionServer) -> Settings:
    completions.requests.clear()
    completions.status, completions.answer = 200, SERVED
    return Settings(
        env="test", database_url=tiny_world.database_url, redis_url=REDIS_URL,
        models_dir=tiny_world.models_dir, as_of=AS_OF, reason_writer="openai",
        reason_openai_url=completions.url, reason_openai_model="test-model",
        reason_openai_api_key="s3cret",
    )  # fmt: skip


async def explain_top(settings: Settings, world: TinyWorld) -> dict[str, Any]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()
    await redis.aclose()
    user = shoppers_by_baskets(world, 1)[0]
    async with client_for(create_app(settings)) as client:
        listing = await client.get("/v1/recommend", params={"user_id": user, "k": 3})
        item = listing.json()["items"][0]["item_id"]
        response = await client.get("/v1/explain", params={"user_id": user, "item_id": item})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_openai_writer_serves_guarded_reasons_through_the_api(
    openai_settings: Settings, tiny_world: TinyWorld, completions: CompletionServer
) -> None:
    body = await explain_top(openai_settings, tiny_world)
    sent = completions.requests[-1]
    assert sent["model"] == "test-model"
    assert sent["temperature"] == 0
    assert sent["messages"][0]["role"] == "system"
    assert completions.headers[-1]["authorization"] == "Bearer s3cret"
    assert body["model_versions"]["reason_writer"] == "openai:test-model"
    if "[ITEM1]" in sent["messages"][-1]["content"]:
        assert body["reason_writer"] == "openai:test-model"
        anchor_title = next(f["data"]["title"] for f in body["evidence"] if "title" in f["data"])
        assert body["reason"].startswith("Picked for you after your ")
        assert "[ITEM" not in body["reason"]
        assert anchor_title.split()[0].lower() in body["reason"].lower()


async def test_openai_writer_falls_back_when_the_server_fails_or_lies(
    openai_settings: Settings, tiny_world: TinyWorld, completions: CompletionServer
) -> None:
    completions.status = 503
    failed = await explain_top(openai_settings, tiny_world)
    assert failed["reason_writer"] == "template"
    assert failed["reason"]
    completions.status, completions.answer = 200, "You bought this 999 times in Peru."
    completions.always = True
    lied = await explain_top(openai_settings, tiny_world)
    assert lied["reason_writer"] == "template"
    assert "999" not in lied["reason"]


ADAPTERS = sorted((PROJECT_ROOT / "models" / "reason_lm").glob("2*/manifest.json"))


@pytest.mark.skipif(not ADAPTERS, reason="no committed reason adapter")
def test_fine_tuned_writer_is_deterministic_and_grounded() -> None:
    from app.reasons import guard
    from app.reasons.guide import told
    from app.reasons.local_lm import TransformersGenerator, base_model_dir, load_lm
    from app.reasons.prompt import render
    from app.reasons.template import template_reason
    from app.reasons.writers import Case, LMWriter
    from app.serving.inference import InferencePool
    from tests.unit.test_reasons import FACT_SETS, VOCABULARY

    model, tokenizer, name = load_lm(base_model_dir(PROJECT_ROOT / "models"), ADAPTERS[-1].parent)
    assert json.loads(ADAPTERS[-1].read_text())["version"] in name
    generator = TransformersGenerator(model, tokenizer, name, InferencePool(1, 1), 64)
    cases = [(facts, style) for facts in FACT_SETS[:6] for style in (0, 1)]
    rendered = [render(facts, style) for facts, style in cases]
    prompts = [prompt for prompt, _ in rendered]
    first, again = generator.generate_now(prompts), generator.generate_now(prompts)
    assert [g.text for g in first] == [g.text for g in again]  # greedy: the same text each time
    passed = [
        not guard.check(g.text, g.finished, told(facts), binding, VOCABULARY)
        for g, (facts, _), (_, binding) in zip(first, cases, rendered, strict=True)
    ]
    # A regression check on the model, not the safety net: whatever fails the guard is never
    # served (the template is). Held-out pass rates are in bench/results/reasons.md.
    assert sum(passed) >= len(cases) // 2, [g.text for g in first]
    assert all(g.finished for g in first)
    writer = LMWriter(generator, VOCABULARY, timeout_s=60)
    served = asyncio.run(writer.write([Case(facts, style) for facts, style in cases]))
    for written, (facts, style) in zip(served, cases, strict=True):
        if written.writer == "template":
            assert written.text == template_reason(facts, style)
        else:
            assert "[" not in written.text  # every slot filled


def test_train_reasons_scores_reason_tokens_only_and_saves_a_loadable_adapter(
    tmp_path: Path,
) -> None:
    from transformers import AutoTokenizer

    from app.reasons.local_lm import MANIFEST, base_model_dir, load_lm
    from app.reasons.lora import Example, LoraSettings, encode, fine_tune
    from app.reasons.prompt import render
    from tests.unit.test_reasons import FACT_SETS

    base = base_model_dir(PROJECT_ROOT / "models")
    examples = [
        Example(render(facts, 0)[0], "Picked for you after your [ITEM1].")
        for facts in FACT_SETS[:4]
    ]
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids, labels = encode(tokenizer, examples[0])
    scored = [token for token, label in zip(ids, labels, strict=True) if label != -100]
    assert tokenizer.decode(scored) == "Picked for you after your [ITEM1].<|im_end|>"
    lora = LoraSettings(batch_size=2, warmup_steps=1)
    path = fine_tune(base, examples, lora, tmp_path, {"corpus": "four fact sets"})
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["steps"] == 2
    assert manifest["examples"] == 4
    assert manifest["corpus"] == "four fact sets"
    _, _, name = load_lm(base, path)
    assert name.endswith(manifest["version"])


@pytest.mark.skipif(not ADAPTERS, reason="no committed reason adapter")
def test_reusing_the_shared_opening_writes_what_the_whole_prompt_would() -> None:
    """The generator runs the system turn once and reuses its keys and values, with each row's
    own tokens after it (padding in between). In fp32, where a batch's shape does not change
    the sums, greedy text must equal that of plain left-padded prompts."""
    import torch

    from app.reasons.local_lm import TransformersGenerator, base_model_dir, chat, load_lm
    from app.reasons.prompt import render
    from app.serving.inference import InferencePool
    from tests.unit.test_reasons import FACT_SETS

    model, tokenizer, name = load_lm(
        base_model_dir(PROJECT_ROOT / "models"), ADAPTERS[-1].parent, torch.float32
    )
    generator = TransformersGenerator(model, tokenizer, name, InferencePool(1, 1), 48)
    prompts = [render(facts, style)[0] for facts in FACT_SETS[:4] for style in (0, 2)]
    reused = [g.text for g in generator.generate_now(prompts)]
    assert generator._opening is not None  # the opening was cached, and reused
    opening, cache = generator._opening
    assert cache.get_seq_length() == len(opening)  # the model filled it (cache_argument)
    batch = tokenizer(
        [chat(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
        add_special_tokens=False,
    )  # fmt: skip
    stops = sorted(set(tokenizer.all_special_ids))
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]
            **batch, max_new_tokens=48, do_sample=False, eos_token_id=stops,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    whole = [
        str(tokenizer.decode(row, skip_special_tokens=True)).strip()
        for row in output[:, batch["input_ids"].shape[1] :]
    ]
    assert reused == whole
    # A second batch reuses the cache as it was (generation must not have grown it).
    assert [g.text for g in generator.generate_now(prompts[:3])] == reused[:3]


@pytest.mark.skipif(not ADAPTERS, reason="no committed reason adapter")
def test_packed_layers_write_what_plain_layers_would() -> None:
    """In bf16 on a CPU every linear layer, the output layer too, is loaded packed (its weight
    reordered once for oneDNN); greedy text must be that of plain nn.Linear layers."""
    import torch

    from app.reasons.local_lm import PackedLinear, TransformersGenerator, base_model_dir, load_lm
    from app.reasons.prompt import render
    from app.serving.inference import InferencePool
    from tests.unit.test_reasons import FACT_SETS

    base, adapter = base_model_dir(PROJECT_ROOT / "models"), ADAPTERS[-1].parent
    packed, tokenizer, name = load_lm(base, adapter, torch.bfloat16)
    assert isinstance(packed.get_output_embeddings(), PackedLinear)  # type: ignore[no-untyped-call]
    assert not any(isinstance(m, torch.nn.Linear) for m in packed.modules())
    plain = load_lm(base, adapter, torch.float32)[0].to(torch.bfloat16)  # type: ignore[arg-type]
    assert not any(isinstance(m, PackedLinear) for m in plain.modules())
    prompts = [render(facts, style)[0] for facts in FACT_SETS[:4] for style in (0, 2)]
    texts = [
        [
            g.text
            for g in TransformersGenerator(
                m, tokenizer, name, InferencePool(1, 1), 48
            ).generate_now(prompts)
        ]
        for m in (packed, plain)
    ]
    assert texts[0] == texts[1]
    assert all(texts[0])
