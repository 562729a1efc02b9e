"""/demo: the storefront demo page. Static files served by the app itself (no CDN); the page
talks to the public API like any storefront would."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

PAGE_DIR = Path(__file__).resolve().parent.parent / "demo"
# Only our own scripts and styles run on the page, whatever a product title holds.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)
assets = StaticFiles(directory=PAGE_DIR)


@router.get("/demo")
async def demo() -> HTMLResponse:
    return HTMLResponse(
        (PAGE_DIR / "index.html").read_text(),
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )
