"""Reason writers behind one interface, chosen by config (RECS_REASON_WRITER):

- `template`: the guide's phrasings, deterministic, always available;
- `transformers`: a local causal LM (app/reasons/local_lm.py);
- `openai`: any OpenAI-compatible server, such as vLLM (app/reasons/openai_lm.py).

A language model only ever proposes: every output passes the guard, and a rejected, cut-off,
failed or late output is replaced by the template sentence, so a reason is always served. A late
generation is not wasted: it finishes in the background and is handed to `keep` (the service
caches it; an answer holding a stand-in is never cached), so the shopper's next request gets
the model's reason. Only one late batch runs at a time: late work never queues ahead of new
requests.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from app.metrics import FALLBACKS, GUARD_REJECTIONS
from app.reasons import guard
from app.reasons.guide import told
from app.reasons.prompt import render
from app.reasons.slots import Binding
from app.reasons.template import template_reason
from app.schemas import Fact

logger = logging.getLogger(__name__)
TEMPLATE = "template"


@dataclass(frozen=True)
class Case:
    facts: list[Fact]  # in priority order (evidence.gather)
    style: int  # a stable per-(shopper, item) choice of phrasing (template.style_of)


@dataclass(frozen=True)
class Written:
    text: str
    writer: str  # who wrote the served text: the writer's name, or "template" as fallback
    problems: tuple[str, ...] = ()  # why the model's output was not served
    transient: bool = False  # a timeout or a failure: worth writing again, so not cached


@dataclass(frozen=True)
class Generation:
    text: str
    finished: bool  # ended with the end token, not at the token cap or deadline


class Generator(Protocol):
    @property
    def name(self) -> str: ...

    async def generate(self, prompts: list[str]) -> list[Generation]:
        """One completion per prompt (the user turn from prompt.render), greedy."""
        ...


# Receives the reasons of a generation that finished after its request was answered.
Keep = Callable[[list[Written]], Awaitable[None]]


class ReasonWriter(Protocol):
    @property
    def name(self) -> str:
        """Part of the reason cache key and of model_versions."""
        ...

    async def write(self, cases: list[Case], keep: Keep | None = None) -> list[Written]: ...

    def for_vocabulary(self, vocabulary: guard.Vocabulary) -> "ReasonWriter":
        """This writer, guarding against another catalog's names (after a ranker reload)."""
        ...

    @property
    def warning(self) -> str | None:
        """What an operator should know: the writer is not the one configured, or lacks its
        adapter. Logged at startup and shown by /readyz."""
        ...


class TemplateWriter:
    name = TEMPLATE

    def __init__(self, warning: str | None = None):
        self.warning = warning

    async def write(self, cases: list[Case], keep: Keep | None = None) -> list[Written]:
        return [Written(template_reason(c.facts, c.style), TEMPLATE) for c in cases]

    def for_vocabulary(self, vocabulary: guard.Vocabulary) -> "TemplateWriter":
        return self


class LMWriter:
    """Generates all cases as one batch, then guards each output."""

    def __init__(
        self,
        generator: Generator,
        vocabulary: guard.Vocabulary,
        timeout_s: float,
        late_s: float = 0.0,  # how long a generation past timeout_s may run on; 0: cancel it
        warning: str | None = None,
    ):
        self.generator = generator
        self.warning = warning
        self.vocabulary = vocabulary
        self.timeout_s = timeout_s
        self.late_s = late_s
        self.name = generator.name
        self._late: set[asyncio.Task[None]] = set()  # held here so they are not collected

    async def write(self, cases: list[Case], keep: Keep | None = None) -> list[Written]:
        if not cases:
            return []
        rendered = [render(c.facts, c.style) for c in cases]
        prompts = [prompt for prompt, _ in rendered]
        generation: asyncio.Task[list[Generation]] = asyncio.create_task(
            self.generator.generate(prompts)
        )
        try:
            outputs = await asyncio.wait_for(asyncio.shield(generation), self.timeout_s)
        except TimeoutError:
            # At most one late batch: more would queue ahead of new requests and starve them
            # of the model (a cancelled batch that has not started leaves the queue).
            if keep is None or self.late_s <= 0 or self._late:
                generation.cancel()
            else:
                task = asyncio.create_task(self._finish_late(generation, cases, rendered, keep))
                self._late.add(task)
                task.add_done_callback(self._late.discard)
            return self._fallback(cases, "reason_timeout", f"no answer in {self.timeout_s} s")
        except Exception as error:  # a broken model server must not break recommendations
            logger.warning("reason generation failed, serving templates: %r", error)
            return self._fallback(cases, "reason_error", repr(error))
        return [
            self._guarded(case, binding, output)
            for case, (_, binding), output in zip(cases, rendered, outputs, strict=True)
        ]

    def for_vocabulary(self, vocabulary: guard.Vocabulary) -> "LMWriter":
        return LMWriter(self.generator, vocabulary, self.timeout_s, self.late_s, self.warning)

    async def _finish_late(
        self,
        generation: Awaitable[list[Generation]],
        cases: list[Case],
        rendered: list[tuple[str, Binding]],
        keep: Keep,
    ) -> None:
        try:
            outputs = await asyncio.wait_for(generation, self.late_s)
            await keep(
                [
                    self._guarded(case, binding, output)
                    for case, (_, binding), output in zip(cases, rendered, outputs, strict=True)
                ]
            )
        except Exception as error:  # nobody is waiting: log, and the next request tries again
            logger.warning("late reason generation failed: %r", error)

    def _guarded(self, case: Case, binding: Binding, output: Generation) -> Written:
        problems = guard.check(
            output.text, output.finished, told(case.facts), binding, self.vocabulary
        )
        if problems:
            GUARD_REJECTIONS.inc()
            FALLBACKS.labels("guard_rejected").inc()
            return Written(template_reason(case.facts, case.style), TEMPLATE, tuple(problems))
        return Written(binding.fill(output.text.strip()), self.name)

    def _fallback(self, cases: list[Case], reason: str, problem: str) -> list[Written]:
        FALLBACKS.labels(reason).inc(len(cases))
        return [
            Written(template_reason(c.facts, c.style), TEMPLATE, (problem,), transient=True)
            for c in cases
        ]
