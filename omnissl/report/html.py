"""A self-contained HTML page: every figure is embedded as a base64 PNG ``data:`` URI, the style is inline,
and nothing is fetched at view time (no scripts, fonts or stylesheets from the network)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td { white-space: nowrap; } /* "98.52 ± 0.34" is one value: never split across lines */
th { background: #f3f3f3; } img { max-width: 100%; display: block; margin: .5em 0; }
.note { color: #555; font-size: .9em; } .verdict { font-weight: bold; padding: .5em; background: #eef6ee; }
pre { background: #f7f7f7; padding: .6em; overflow: auto; max-height: 30em; font-size: .8em; }
"""


@dataclass
class Section:
    title: str
    images: list[Path] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)
    verdict: str | None = None
    preformatted: str | None = None


def image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(title: str, sections: list[Section], *, subtitle: str = "") -> str:
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if subtitle:
        parts.append(f'<p class="note">{html.escape(subtitle)}</p>')
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.title)}</h2>")
        for text in section.paragraphs:
            parts.append(f'<p class="note">{html.escape(text)}</p>')
        for header, rows in section.tables:
            parts.append(table_html(header, rows))
        if section.verdict:
            parts.append(f'<p class="verdict">{html.escape(section.verdict)}</p>')
        for image in section.images:
            parts.append(image_tag(image, image.stem.replace("_", " ")))
        if section.preformatted:
            parts.append(f"<pre>{html.escape(section.preformatted)}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_html(path: Path, title: str, sections: list[Section], *, subtitle: str = "") -> Path:
    path.write_text(render(title, sections, subtitle=subtitle), encoding="utf-8")
    return path
