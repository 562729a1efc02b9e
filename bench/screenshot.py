"""The README's picture of /demo: a running server (make run), one shopper, "why?" opened on
the first recommendation. Not a benchmark; it lives here beside the other result writers.

    .venv/bin/python -m bench.screenshot [BASE_URL] [SHOPPER]   # writes bench/results/demo.png
"""

import shutil
import sys

from playwright.sync_api import sync_playwright

from app.config import PROJECT_ROOT

OUT = PROJECT_ROOT / "bench" / "results" / "demo.png"


def main(base: str = "http://127.0.0.1:8000", shopper: str = "14911") -> None:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(f"{base}/demo?user={shopper}")
        page.locator("#recs li.rec").first.wait_for(timeout=120_000)
        page.locator("#recs button.why").first.click()
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:])
