"""Time loading the latest two-tower bundle in a fresh process (what service startup pays).

Reference, measured in the same run: a fresh process that only imports torch. Writes
bench/results/model_load.md.

    .venv/bin/python -m bench.model_load
"""

import statistics
import subprocess
import sys

from app.config import PROJECT_ROOT, get_settings
from app.machine import describe_machine, now
from app.serving.bundle import latest_version

RESULT = PROJECT_ROOT / "bench" / "results" / "model_load.md"
RUNS = 5
TARGET_S = 3.0

LOAD = """
import time
started = time.perf_counter()
from app.serving.bundle import load_bundle
bundle = load_bundle(__import__("pathlib").Path({path!r}))
print(time.perf_counter() - started)
"""
IMPORT_TORCH = """
import time
started = time.perf_counter()
import torch
print(time.perf_counter() - started)
"""


def seconds(code: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    path = latest_version(get_settings().models_dir / "two_tower")
    load = statistics.median(seconds(LOAD.format(path=str(path))) for _ in range(RUNS))
    torch_only = statistics.median(seconds(IMPORT_TORCH) for _ in range(RUNS))
    verdict = "met" if load <= TARGET_S else "NOT met"
    report = f"""# Model bundle loading

- Machine: {describe_machine()}
- Date: {now()}
- Command: `.venv/bin/python -m bench.model_load` (median of {RUNS} fresh processes each)
- Bundle: `{path.relative_to(PROJECT_ROOT)}`

| what | seconds |
| --- | ---: |
| import the code + load the bundle (safetensors, JSON) | {load:.2f} |
| reference: `import torch` alone | {torch_only:.2f} |

- Ratio load / import torch: **{load / torch_only:.2f}x**.
- Target: loading at startup in {TARGET_S:.0f} s or less: **{verdict}**.
"""
    RESULT.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
