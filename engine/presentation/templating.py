"""The one Jinja environment for every rendered document (the summary, the rulebook book).

Templates live in engine/presentation/templates/ and ship inside the wheel as package data. HTML
templates are autoescaped, so text a user typed (a label, a concern, a clinician's name)
can never become markup. Markdown templates (`*.md.j2`) are not HTML-escaped by Jinja;
they pass user text through the `md` filter, which neutralises Markdown and HTML syntax.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from engine.errors import UsageError

TEMPLATES = Path(__file__).resolve().parent / "templates"

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|>~-])")


def md_escape(text: object) -> str:
    """Plain text made safe for Markdown: no HTML tags, no Markdown markup, one line."""
    value = " ".join(str(text).split())
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


@functools.cache
def environment() -> Environment:
    """The shared environment: autoescape on (off only for `.md.j2`), undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(
            enabled_extensions=("html", "htm", "xml"), disabled_extensions=("md.j2",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md"] = md_escape
    return env


def html_to_pdf(html: str, tagged: bool = False) -> bytes:
    """Print a rendered HTML document to PDF with WeasyPrint, imported only here (it is slow to import).

    `tagged`: a PDF/UA-1 file, with its structure tagged for screen readers and its language and
    title (from the page's `lang` and `<title>`) in the metadata.
    """
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: WeasyPrint is there but the Pango library is not
        raise UsageError(
            f"PDF output needs WeasyPrint and the Pango library ({exc}); "
            "write --format html and print it from a browser, or install Pango (Debian: libpango-1.0-0)"
        ) from None
    logging.getLogger("weasyprint").setLevel(logging.ERROR)  # its font-subsetting notices are not for readers
    options = {"pdf_variant": "pdf/ua-1"} if tagged else {}
    return bytes(weasyprint.HTML(string=html).write_pdf(**options))
