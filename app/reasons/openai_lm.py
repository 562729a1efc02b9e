"""The `openai` writer's generator: any server speaking the OpenAI chat-completions protocol
(vLLM, TGI, llama.cpp server...), for scaling the LM out of the API process. The server batches
concurrent requests itself, so each prompt is its own request, all sent at once."""

import asyncio
from dataclasses import dataclass

import httpx

from app.reasons.prompt import SYSTEM
from app.reasons.writers import Generation


@dataclass
class OpenAIGenerator:
    client: httpx.AsyncClient  # base_url = the server's /v1 root; Authorization set if needed
    model: str
    max_new_tokens: int = 64

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    async def generate(self, prompts: list[str]) -> list[Generation]:
        return list(await asyncio.gather(*(self._one(prompt) for prompt in prompts)))

    async def _one(self, prompt: str) -> Generation:
        response = await self.client.post(
            "chat/completions",
            json={
                "model": self.model,
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": prompt},
                ],
                "max_tokens": self.max_new_tokens,
                "temperature": 0,
            },
        )
        response.raise_for_status()
        choice = response.json()["choices"][0]
        content = choice["message"]["content"]
        text = content.strip() if isinstance(content, str) else ""
        return Generation(text, choice.get("finish_reason") == "stop")
