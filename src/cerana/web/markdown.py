"""Markdown of descriptions, logs and summaries, rendered to safe HTML.

Two layers: markdown-it-py's CommonMark preset with raw HTML turned off
(so ``<script>`` in the source stays text), then nh3 with a short allowlist
of tags, attributes and URL schemes, in case a rendering rule ever lets
something through. Links get ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup

# Longer sources are rendered as plain text: markdown-it is linear but a
# megabyte of nested emphasis still costs a page hundreds of milliseconds.
MAX_RENDERED_LENGTH = 200_000

_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "code",
    "pre", "blockquote", "ul", "ol", "li", "a", "img",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
_URL_SCHEMES = {"http", "https", "mailto"}
# Merged cases point at their sources with TheHive's hash routes.
_THEHIVE_CASE_LINK = re.compile(r"^#/case/([A-Za-z0-9_-]{1,40})(?:/[a-z]*)?$")

_parser = MarkdownIt("commonmark", {"html": False})
_cleaner = nh3.Cleaner(
    tags=_TAGS,
    attributes=_ATTRIBUTES,
    url_schemes=_URL_SCHEMES,
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def render_markdown(source: str | None) -> Markup:
    """Returns the sanitised HTML of markdown ``source`` (empty for None)."""
    if not source:
        return Markup("")
    if len(source) > MAX_RENDERED_LENGTH:
        return Markup("<pre>{}</pre>").format(source)
    tokens = _parser.parse(source)
    _rewrite_case_links(tokens)
    html = _parser.renderer.render(tokens, _parser.options, {})
    return Markup(_cleaner.clean(html))  # noqa: S704 - nh3 output is sanitised


def _rewrite_case_links(tokens: list[Token]) -> None:
    for token in tokens:
        if token.children:
            _rewrite_case_links(token.children)
        if token.type != "link_open":
            continue
        href = token.attrGet("href")
        match = _THEHIVE_CASE_LINK.match(href) if isinstance(href, str) else None
        if match:
            token.attrSet("href", f"/cases/{match.group(1)}")
