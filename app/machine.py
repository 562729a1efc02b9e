"""What every benchmark and evaluation report says about where it ran."""

import os
import platform
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path


def describe_machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 2**20:.0f} GiB RAM"
    psql = shutil.which("psql")
    postgres = ""
    if psql:
        postgres = subprocess.run(  # noqa: S603 (fixed arguments, no user input)
            [psql, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}; {platform.system()} {platform.release()};"
        f" Python {platform.python_version()}; {postgres or 'psql not found'}"
    )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
