"""The one sanitiser for every string that is filled into a reason or an evidence text: product
titles, countries, themes, anything that came in through an ingest or the events API.

Such text is data, never instructions or markup: tags, URLs (with or without a scheme), e-mail
addresses, phone-number-like digit runs, control and bidi characters are dropped, whitespace is
collapsed and the length is capped at a word boundary. What is left is printable text that a
product card can show as it is.
"""

import html
import re
import unicodedata

MAX_CHARS = 60

TAG = re.compile(r"<[^>]*>?")
URL = re.compile(
    r"(?i)\b(?:[a-z][a-z0-9+.-]*:/*|www\.)\S*"  # a scheme ("https:", "javascript:") or www.
    r"|\b[\w-]+(?:\.[\w-]+)+/\S*"  # a host with a path: evil.example.com/deal
    r"|\b[\w-]+(?:\.[\w-]+)*\.(?:com|net|org|info|biz|io|co|uk|de|fr|ru|cn|xyz|top|app|shop)\b"
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*")
# Seven or more digits, however they are spaced or dashed: a phone number, not a product code.
PHONE = re.compile(r"\+?\d(?:[\s().-]*\d){6,}")
# Letters, digits and the punctuation titles use; everything else becomes a space.
ALLOWED = re.compile(r"[^\w\s'&,./%+-]")


def _printable(text: str) -> str:
    """Without control, format (bidi overrides, zero-width) and other non-printing characters."""
    return "".join(
        " " if unicodedata.category(c) in ("Zs", "Zl", "Zp") else c
        for c in text
        if unicodedata.category(c)[0] not in ("C",) or c in "\t\n"
    )


def clean(text: str, max_chars: int = MAX_CHARS) -> str:
    """`text` made safe to show inside a sentence; empty when nothing printable is left."""
    text = _printable(html.unescape(unicodedata.normalize("NFKC", text)))
    text = TAG.sub(" ", text)
    text = EMAIL.sub(" ", text)
    text = URL.sub(" ", text)
    text = PHONE.sub(" ", text)
    text = ALLOWED.sub(" ", text).replace("_", " ")
    text = " ".join(text.split())
    if len(text) > max_chars:
        cut = text[: max_chars + 1]
        text = cut[: cut.rfind(" ")] if " " in cut else cut[:max_chars]
    return text.strip(" ,.-/&+")
