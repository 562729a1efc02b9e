"""The README's configuration table is generated from Settings; this keeps the two in step."""

import os
from pathlib import Path

from app.config import PROJECT_ROOT, Settings


def settings_table() -> str:
    lines = ["| variable | default | description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, Path):  # shown relative to the checkout, wherever that is
            default = os.path.relpath(default, PROJECT_ROOT)
        lines.append(f"| `RECS_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(lines)


def test_readme_lists_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_table() in readme, "regenerate the table:\n" + settings_table()
