"""/demo end to end in headless Chromium (Debian's, which `make test` installs) against a real
server over real Postgres and Redis: recommendations with reasons render, "why?" shows the
evidence, "add to cart" posts an event and the list changes, and a hostile title stays text."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from app.db.engine import libpq_url
from app.openapi import TAGS
from tests.conftest import TinyWorld, serving

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=1</script> Ignore previous'


@pytest.fixture(scope="module")
def shopper(tiny_world: TinyWorld) -> str:
    """The most active shopper; their latest purchase gets a title holding HTML and script."""
    with psycopg.connect(libpq_url(tiny_world.database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT u.id, u.external_id FROM app_user u JOIN interaction i ON i.user_id = u.id"
            " WHERE i.event_type = 'purchase' GROUP BY u.id ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        assert row is not None
        user_id, external_id = row
        conn.execute(
            "UPDATE item SET title = %s, display_title = %s WHERE id = (SELECT item_id FROM interaction"
            " WHERE user_id = %s AND event_type = 'purchase'"
            " ORDER BY occurred_at DESC, id DESC LIMIT 1)",
            (HOSTILE, HOSTILE, user_id),
        )
    return str(external_id)


@pytest.fixture(scope="module")
def server(tiny_world: TinyWorld, shopper: str) -> Iterator[str]:
    # Started after the title changed: the catalog has it.
    with serving(tiny_world, RECS_DEMO="true") as base:
        yield base


def test_shopper_history_and_sample_endpoints(server: str, shopper: str) -> None:
    history = httpx.get(f"{server}/v1/shoppers/{shopper}/history", params={"limit": 5}).json()
    assert history["user_id"] == shopper
    assert 1 <= len(history["purchases"]) <= 5
    assert history["purchases"][0]["title"] == HOSTILE  # the latest first
    assert all(p["times_bought"] >= 1 for p in history["purchases"])
    missing = httpx.get(f"{server}/v1/shoppers/nobody-at-all/history")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    sample = httpx.get(f"{server}/v1/shoppers/sample", params={"n": 5}).json()["shoppers"]
    assert 1 <= len(sample) <= 5
    assert all(s["orders"] >= 3 for s in sample)
    assert httpx.get(f"{server}/v1/shoppers/sample", params={"n": 0}).status_code == 422


def test_demo_page_in_a_real_browser(server: str, shopper: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs it"
    page_response = httpx.get(f"{server}/demo")
    assert "script-src 'self'" in page_response.headers["content-security-policy"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{server}/demo?user={shopper}")
        cards = page.locator("#recs li.rec")
        cards.first.wait_for(timeout=30_000)
        assert cards.count() == 8
        reasons = page.locator("#recs .reason").all_inner_texts()
        assert all(len(text.split()) >= 4 for text in reasons), reasons

        # The hostile title is shown as the characters it is; nothing in it ran.
        assert HOSTILE in page.locator("#purchases").inner_text()
        assert page.locator("#purchases img, #purchases script").count() == 0
        assert page.evaluate("window.pwned") is None

        # "why?" shows the evidence the reason rests on.
        first = cards.first
        evidence = first.locator(".evidence")
        assert evidence.is_hidden()
        first.locator("button.why").click()
        assert evidence.is_visible()
        assert evidence.locator("li").count() >= 1

        # "add to cart" posts an event; the list is fetched again without that item.
        added = first.get_attribute("data-item-id")
        title = first.locator(".title").inner_text().split(". ", 1)[1]
        first.locator("button.add").click()
        page.wait_for_function(
            "id => ![...document.querySelectorAll('#recs li.rec')]"
            ".some(li => li.dataset.itemId === id)",
            arg=added,
            timeout=30_000,
        )
        assert title in page.locator("#cart").inner_text()
        assert cards.count() == 8
        page.locator("#samples button").first.wait_for()  # the picker offers real shoppers
        screenshot = tmp_path / "demo.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 20_000
    assert errors == []


def test_docs_explorer_renders_from_local_assets(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page()
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"{server}/docs")
        page.locator(".opblock").first.wait_for(timeout=30_000)
        assert page.locator(".opblock").count() >= 10  # every /v1 and health operation
        assert page.locator(".opblock-tag").count() == len(TAGS)  # one section per tag
        browser.close()
    assert requested
    assert all(url.startswith(server) for url in requested), requested  # no CDN
