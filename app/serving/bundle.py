"""The two-tower model bundle on disk: self-contained, no pickles.

models/two_tower/<version>/
    weights.safetensors   the model's state dict
    items.safetensors     item vectors (+ padding row), the item tower's inputs, popularity
    id_maps.json          item index -> SKU, country / theme / price band index -> name
    manifest.json         config, data snapshot hash, split, metrics, hyper-parameters, versions
"""

import contextlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from app import __version__
from app.config import PROJECT_ROOT
from app.schemas import VERSION_PATTERN
from app.train.data import FloatArray, ItemSide
from app.train.inputs import SequenceSpec
from app.train.two_tower import TwoTower, TwoTowerConfig

FILES = ("weights.safetensors", "items.safetensors", "id_maps.json", "manifest.json")


class BundleError(RuntimeError):
    """A model bundle is missing, incomplete or inconsistent."""


@dataclass(frozen=True)
class Bundle:
    version: str
    path: Path
    model: TwoTower
    item_vectors: torch.Tensor  # (n_items + 1, d), unit rows, zero padding row last
    item_skus: list[str]
    item_side: ItemSide
    countries: list[str]  # index 0 = unknown
    popular: FloatArray  # (n_countries, n_items): recent popularity; row 0 is everyone
    manifest: dict[str, Any]

    @property
    def n_items(self) -> int:
        return len(self.item_skus)

    @property
    def inputs(self) -> SequenceSpec:
        """What the user tower reads (the manifest's "inputs"; none: purchases only)."""
        return SequenceSpec.from_manifest(self.manifest)


def code_version() -> str:
    git = shutil.which("git")
    commit = "unknown"
    if git:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            commit = subprocess.run(  # noqa: S603 (fixed arguments, no user input)
                [git, "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                text=True, check=True, timeout=5,
            ).stdout.strip()  # fmt: skip
    return f"{__version__}+{commit}"


def save_bundle(
    root: Path,
    model: TwoTower,
    item_skus: list[str],
    side: ItemSide,
    countries: list[str],
    popular: FloatArray,
    manifest: dict[str, Any],
) -> Path:
    created = datetime.now(UTC)
    version = f"{created:%Y%m%d-%H%M%S}-{manifest['data']['snapshot_hash'][:8]}"
    path = root / version
    path.mkdir(parents=True, exist_ok=False)
    model.eval()
    with torch.inference_mode():
        vectors = model.item_vectors(
            torch.from_numpy(side.text), torch.from_numpy(side.theme),
            torch.from_numpy(side.price_band), torch.ones(len(item_skus), dtype=torch.bool),
        )  # fmt: skip
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path / FILES[0])
    save_file(
        {
            "item_vectors": vectors.contiguous(),
            "text": torch.from_numpy(side.text),
            "theme": torch.from_numpy(side.theme),
            "price_band": torch.from_numpy(side.price_band),
            "popular": torch.from_numpy(np.ascontiguousarray(popular, dtype=np.float32)),
        },
        path / FILES[1],
    )
    id_maps = {
        "item_skus": item_skus, "countries": countries, "themes": side.themes,
        "price_bands": side.price_bands,
    }  # fmt: skip
    (path / FILES[2]).write_text(json.dumps(id_maps))
    full_manifest = {
        "version": version,
        "created_at": created.isoformat(),
        "code_version": code_version(),
        "config": model.config.as_dict(),
        **manifest,
    }
    (path / FILES[3]).write_text(json.dumps(full_manifest, indent=2) + "\n")
    return path


class UnknownVersion(BundleError):
    """No bundle of that version exists."""


def versions(root: Path) -> list[Path]:
    """The bundles under root, oldest first (version names start with their creation time)."""
    return sorted(p for p in root.glob("*") if (p / "manifest.json").is_file())


def latest_version(root: Path) -> Path:
    found = versions(root)
    if not found:
        raise BundleError(f"no model bundle under {root}; run `python -m app train`")
    return found[-1]


def find_version(root: Path, version: str) -> Path:
    """The bundle of this version; the name must be a plain folder name (never a path)."""
    if not re.fullmatch(VERSION_PATTERN, version):
        raise UnknownVersion(f"{version!r} is not a model version name")
    if not (root / version / "manifest.json").is_file():
        raise UnknownVersion(f"no model version {version} under {root}")
    return root / version


def load_bundle(path: Path) -> Bundle:
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}")
    manifest = json.loads((path / FILES[3]).read_text())
    id_maps = json.loads((path / FILES[2]).read_text())
    config = TwoTowerConfig(**manifest["config"])
    try:
        inputs = SequenceSpec.from_manifest(manifest)
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: the manifest's inputs can't be read ({exc})") from None
    if inputs.events_per_type != config.events_per_type:
        raise BundleError(f"{path}: the manifest's inputs and the model's config disagree")
    model = TwoTower(config)
    # safetensors holds tensors only: loading can't run code (unlike a pickle).
    model.load_state_dict(load_file(path / FILES[0]))
    model.eval()
    arrays = load_file(path / FILES[1])
    skus = id_maps["item_skus"]
    if arrays["item_vectors"].shape[0] != len(skus) + 1:
        raise BundleError(f"{path}: item vectors and SKU map disagree")
    return Bundle(
        version=manifest["version"],
        path=path,
        model=model,
        item_vectors=arrays["item_vectors"],
        item_skus=skus,
        item_side=ItemSide(
            text=arrays["text"].numpy(),
            theme=arrays["theme"].numpy(),
            price_band=arrays["price_band"].numpy(),
            themes=id_maps["themes"],
            price_bands=id_maps["price_bands"],
        ),
        countries=id_maps["countries"],
        popular=arrays["popular"].numpy(),
        manifest=manifest,
    )
