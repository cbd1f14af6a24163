"""The report's Markdown as one self-contained HTML page (figures inlined as data URIs, no external requests).

Renders the subset of Markdown the report writes: headings, paragraphs, pipe tables, one- and two-level lists,
images on their own line, inline code / bold / italics, and the ``<details>`` / ``<summary>`` lines passed through.
A dependency-free renderer keeps the lock file small; anything else is shown as escaped text, never dropped.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_IMAGE = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)$")
_INLINE = re.compile(r"`(?P<code>[^`]+)`|\*\*(?P<bold>.+?)\*\*|(?<![*\w])\*(?P<em>[^*\s][^*]*?)\*(?![*\w])")
_PASSTHROUGH = re.compile(r"^</?(details|summary)>|^<details><summary>.*</summary>$")

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #1b1b1b; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .88rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; vertical-align: top; text-align: left; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
code { background: #f2f2f2; padding: 0 .2rem; border-radius: 3px; font-size: .9em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; margin: .4rem 0; }
.v-supported { color: #0a6b2c; font-weight: 600; } .v-not-supported { color: #a11919; font-weight: 600; }
.v-inconclusive { color: #8a6d00; } .v-no-data { color: #777; }
details { margin: .5rem 0 1rem; } summary { cursor: pointer; font-weight: 600; }
"""


def _inline(text: str) -> str:
    out, pos = [], 0
    for m in _INLINE.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        if m.group("code") is not None:
            out.append(f"<code>{html.escape(m.group('code'))}</code>")
        elif m.group("bold") is not None:
            out.append(f"<strong>{_inline(m.group('bold'))}</strong>")
        else:
            out.append(f"<em>{_inline(m.group('em'))}</em>")
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return _mark_verdicts("".join(out))


def _mark_verdicts(rendered: str) -> str:
    """Colour the verdict words of the claims table."""
    for verdict in ("not supported", "supported", "inconclusive", "no data"):
        rendered = rendered.replace(f"<strong>{verdict}</strong>",
                                    f'<strong class="v-{verdict.replace(" ", "-")}">{verdict}</strong>')
    return rendered


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _image(alt: str, src: str, base: Path) -> str:
    path = (base / src).resolve()
    if path.suffix.lower() == ".png" and path.is_file():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'
    return f"<p><em>figure {html.escape(src)} is missing</em></p>"


def markdown_to_html(text: str, base: Path, title: str) -> str:
    """``text``: the report's Markdown; ``base``: the folder its image paths are relative to."""
    lines = text.split("\n")
    body: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            body.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if not stripped:
            flush()
            i += 1
        elif m := re.match(r"^(#{1,4}) (.*)$", line):
            flush()
            level = len(m.group(1))
            body.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif _PASSTHROUGH.match(stripped):
            flush()
            body.append(stripped)
            i += 1
        elif m := _IMAGE.match(stripped):
            flush()
            body.append(_image(m.group("alt"), m.group("src"), base))
            i += 1
        elif stripped.startswith("|"):
            flush()
            block = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                block.append(lines[i])
                i += 1
            rows = [_cells(b) for b in block]
            has_header = len(rows) > 1 and all(re.fullmatch(r":?-{3,}:?", c) for c in rows[1] if c)
            head, rest = (rows[0], rows[2:]) if has_header else (None, rows)
            out = ["<table>"]
            if head:
                out.append("<thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead>")
            out.append("<tbody>" + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                                           for r in rest) + "</tbody></table>")
            body.append("".join(out))
        elif re.match(r"^\s*- ", line):
            flush()
            out, depth = [], 0
            while i < len(lines) and re.match(r"^\s*- ", lines[i]):
                indent = (len(lines[i]) - len(lines[i].lstrip())) // 2 + 1
                while depth < indent:
                    out.append("<ul>")
                    depth += 1
                while depth > indent:
                    out.append("</ul>")
                    depth -= 1
                out.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("</ul>" * depth)
            body.append("".join(out))
        else:
            para.append(stripped)
            i += 1
    flush()
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
