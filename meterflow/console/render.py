"""Rendering a console page: Jinja2 with autoescaping, the page's texts in its language,
and the headers every page carries (a strict Content-Security-Policy: scripts and styles
from this origin only; no framing; no caching of pages with a CSRF token)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from meterflow.console.i18n import LANGUAGES, texts

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                  undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "style-src 'self'; script-src 'self'; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(template: str, lang: str, status: int, **values: Any) -> HTMLResponse:
    """A page in ``lang``; ``t(key)`` in templates gives the text, and the page's script
    gets every text and ``values['csrf']``, ``can``, ``params`` as JSON (``mf-context``)."""
    words = texts(lang)

    def t(key: str) -> str:
        return words[key]

    script = {"lang": lang, "t": words, "csrf": values.get("csrf", ""),
              "can": values.get("can", {}), "params": values.get("params", {}),
              "user": values.get("user", "")}
    html = ENV.get_template(template).render(t=t, lang=lang, languages=LANGUAGES,
                                             context=script, **values)
    return HTMLResponse(html, status_code=status, headers=HEADERS)
