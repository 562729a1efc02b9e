"""/v1/admin against a real server with two worker processes: a reload switches every process to
the new ranker version while requests go on, and none fails."""

import dataclasses
import json
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis

from app.cache import ACTIVE_RANKER
from tests.conftest import REDIS_URL, Shoppers, TinyWorld, serving, wait_for
from tests.integration.test_auth import add_key

NEW_VERSION = "29990101-000000-reloaded"


@dataclasses.dataclass(frozen=True)
class Admin:
    base: str
    models_dir: Path
    old: str
    headers: dict[str, str]


def add_version(models_dir: Path, old: str) -> None:
    """A copy of the trained bundle under a later version name: what the next training run
    would leave beside the serving one."""
    new = models_dir / "two_tower" / NEW_VERSION
    shutil.copytree(models_dir / "two_tower" / old, new)
    manifest = json.loads((new / "manifest.json").read_text())
    (new / "manifest.json").write_text(json.dumps({**manifest, "version": NEW_VERSION}))


@pytest.fixture(scope="module")
def admin(tiny_world: TinyWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Admin]:
    models = tmp_path_factory.mktemp("reload") / "models"
    shutil.copytree(tiny_world.models_dir, models)
    (old,) = [p.name for p in (models / "two_tower").iterdir()]
    world = dataclasses.replace(tiny_world, models_dir=models)
    key = add_key(tiny_world.database_url, "operator", ["admin"])
    # Pinned to the old version, so the new one can appear beside it.
    try:
        with serving(world, workers=2, RECS_MODEL_VERSION=old) as base:
            yield Admin(base, models, old, {"Authorization": f"Bearer {key}"})
    finally:
        Redis.from_url(REDIS_URL).delete(ACTIVE_RANKER)  # other tests' servers must not follow


def test_admin_routes_need_the_admin_scope(admin: Admin, tiny_world: TinyWorld) -> None:
    writer = add_key(tiny_world.database_url, "writer", ["events:write"])
    assert httpx.post(f"{admin.base}/v1/admin/reload").status_code == 401
    wrong = httpx.post(
        f"{admin.base}/v1/admin/reload", headers={"Authorization": f"Bearer {writer}"}
    )
    assert wrong.status_code == 403
    assert httpx.get(f"{admin.base}/v1/admin/models").status_code == 401


def test_reload_refuses_unknown_and_path_like_versions(admin: Admin) -> None:
    for version, status in (("20000101-000000-none", 404), ("../../etc", 422), ("a/b", 422)):
        answer = httpx.post(
            f"{admin.base}/v1/admin/reload", json={"version": version}, headers=admin.headers
        )
        assert answer.status_code == status, version
        assert answer.headers["content-type"] == "application/problem+json"
    models = httpx.get(f"{admin.base}/v1/admin/models", headers=admin.headers).json()
    assert models == {"serving": admin.old, "available": [admin.old]}


def test_reload_under_load_switches_every_process_and_fails_nothing(
    admin: Admin, tiny_world: TinyWorld, shoppers: Shoppers
) -> None:
    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def storefront() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            user = shoppers.users[n % len(shoppers.users)]
            # A new connection now and then, so both worker processes answer.
            with httpx.Client(base_url=admin.base, timeout=10) as client:
                for _ in range(5):
                    answer = client.get("/v1/recommend", params={"user_id": user, "k": 5})
                    body = answer.json()
                    seen.append((answer.status_code, body.get("model_versions", {}).get("ranker")))

    threads = [threading.Thread(target=storefront) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(seen) > 40, 30)
        add_version(admin.models_dir, admin.old)
        answer = httpx.post(f"{admin.base}/v1/admin/reload", headers=admin.headers, timeout=60)
        assert answer.status_code == 200, answer.text
        assert answer.json()["previous"] == admin.old
        assert answer.json()["serving"] == NEW_VERSION
        assert answer.json()["processes_notified"] == 2  # both workers subscribe
        switched_at = len(seen)

        def all_new() -> bool:
            # 60 answers in a row, over a dozen new connections: both workers, not just the
            # one that took the reload (the other loads the bundle and catalog on its own).
            recent = seen[-60:]
            return len(seen) > switched_at + 60 and all(v == NEW_VERSION for _, v in recent)

        wait_for(all_new, 60)  # the other worker follows within moments
        settled = len(seen)
        wait_for(lambda: len(seen) > settled + 40, 30)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    statuses = Counter(status for status, _ in seen)
    assert statuses == {200: len(seen)}, f"no request failed during the reload: {statuses}"
    versions = [version for _, version in seen]
    assert set(versions) == {admin.old, NEW_VERSION}  # each answer from one version, whole
    assert all(v == NEW_VERSION for v in versions[settled:]), "no process went back"
    models = httpx.get(f"{admin.base}/v1/admin/models", headers=admin.headers).json()
    assert models == {"serving": NEW_VERSION, "available": [admin.old, NEW_VERSION]}


def test_a_process_started_after_a_reload_follows_it(admin: Admin, tiny_world: TinyWorld) -> None:
    if not (admin.models_dir / "two_tower" / NEW_VERSION).exists():
        add_version(admin.models_dir, admin.old)
    answer = httpx.post(
        f"{admin.base}/v1/admin/reload", json={"version": NEW_VERSION}, headers=admin.headers,
        timeout=60,
    )  # fmt: skip
    assert answer.status_code == 200
    world = dataclasses.replace(tiny_world, models_dir=admin.models_dir)
    with serving(world, RECS_MODEL_VERSION=admin.old) as late:  # configured for the old one
        models = httpx.get(f"{late}/v1/admin/models", headers=admin.headers).json()
    assert models["serving"] == NEW_VERSION
