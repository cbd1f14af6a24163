"""The report's Markdown as one self-contained HTML page (figures inlined as data URIs, no external requests).

Rendered by markdown-it-py (CommonMark with the table extension) with raw HTML turned off, so every piece of text
is escaped by construction: the only markup in the page is the renderer's own, and nothing from a config, a model
name or a file name can inject HTML. Two additions of the kit's, each producing only its own escaped markup:

- collapsible blocks: a paragraph that is exactly ``<details><summary>TITLE</summary>`` opens one (the title is
  rendered as escaped inline Markdown) and a paragraph ``</details>`` closes it (GitHub renders report.md's
  blocks the same way);
- figures: an image whose source is a PNG file inside the results folder is inlined as a data URI; any other
  image becomes a note that the figure is missing.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

_DETAILS_OPEN = re.compile(r"^<details><summary>(?P<title>.*)</summary>$")
_DETAILS_CLOSE = "</details>"

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


def _parser(base: Path) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    root = Path(base).resolve()

    def details(state) -> None:
        tokens, out, i = state.tokens, [], 0
        while i < len(tokens):
            t = tokens[i]
            if t.type == "paragraph_open" and i + 2 < len(tokens) and tokens[i + 1].type == "inline":
                content = tokens[i + 1].content.strip()
                m = _DETAILS_OPEN.match(content)
                if m or content == _DETAILS_CLOSE:
                    block = Token("html_block", "", 0)
                    block.content = (f"<details><summary>{md.renderInline(m.group('title'))}</summary>\n" if m
                                     else "</details>\n")
                    out.append(block)
                    i += 3
                    continue
            out.append(t)
            i += 1
        state.tokens = out

    md.core.ruler.push("advtransfer_details", details)

    def image(renderer, tokens, idx, options, env) -> str:
        token = tokens[idx]
        alt = "".join(child.content for child in token.children or [])
        src = token.attrGet("src") or ""
        path = (root / src).resolve()
        if path.suffix.lower() == ".png" and root in path.parents and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return f'<img class="figure" alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'
        return f"<em>figure {html.escape(src)} is missing</em>"

    md.add_render_rule("image", image)
    return md


def _mark_verdicts(rendered: str) -> str:
    """Colour the verdict words of the claims table."""
    for verdict in ("not supported", "supported", "inconclusive", "no data"):
        rendered = rendered.replace(f"<strong>{verdict}</strong>",
                                    f'<strong class="v-{verdict.replace(" ", "-")}">{verdict}</strong>')
    return rendered


def markdown_to_html(text: str, base: Path, title: str) -> str:
    """``text``: the report's Markdown; ``base``: the folder its image paths are relative to."""
    body = _mark_verdicts(_parser(base).render(text))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head>\n<body>\n" + body + "</body></html>\n")
