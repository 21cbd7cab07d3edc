"""Markdown rendering: CommonMark without raw HTML, then an nh3 allowlist."""

from __future__ import annotations

import pytest

from cerana.web.markdown import MAX_RENDERED_LENGTH, render_markdown


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("<script>alert(1)</script>", id="script-block"),
        pytest.param("text <script>alert(1)</script> text", id="script-inline"),
        pytest.param("<img src=x onerror=alert(1)>", id="img-onerror"),
        pytest.param('<a href="javascript:alert(1)">x</a>', id="raw-javascript-link"),
        pytest.param("<svg onload=alert(1)></svg>", id="svg-onload"),
        pytest.param('<iframe src="https://evil.example"></iframe>', id="iframe"),
        pytest.param("<style>body{display:none}</style>", id="style"),
    ],
)
def test_raw_html_is_shown_as_text_never_as_markup(source: str) -> None:
    html = str(render_markdown(source))

    assert "<script" not in html
    assert (
        "<img" not in html
        and "<svg" not in html
        and "<iframe" not in html
        and "<style" not in html
    )
    assert "&lt;" in html


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("[x](javascript:alert(1))", id="javascript"),
        pytest.param("[x](JaVaScRiPt:alert(1))", id="mixed-case"),
        pytest.param("[x](vbscript:msgbox(1))", id="vbscript"),
        pytest.param("[x](data:text/html,<script>alert(1)</script>)", id="data-html"),
        pytest.param("![x](javascript:alert(1))", id="image-javascript"),
        pytest.param("[x](&#106;avascript:alert(1))", id="entity-encoded"),
    ],
)
def test_dangerous_link_schemes_never_become_links(source: str) -> None:
    html = str(render_markdown(source))

    assert "<a " not in html
    assert "src=" not in html


def test_links_keep_their_target_and_get_noopener_noreferrer() -> None:
    html = str(render_markdown("[report](https://example.org/r?a=1&b=2)"))

    assert 'href="https://example.org/r?a=1&amp;b=2"' in html
    assert 'rel="noopener noreferrer"' in html


def test_common_markdown_renders_to_the_allowed_tags() -> None:
    html = str(
        render_markdown(
            "# Title\n\n**bold** _em_ `code`\n\n- one\n- two\n\n> quote\n\n```\nx < y\n```"
        )
    )

    assert "<h1>Title</h1>" in html
    assert (
        "<strong>bold</strong>" in html
        and "<em>em</em>" in html
        and "<code>code</code>" in html
    )
    assert "<li>one</li>" in html and "<blockquote>" in html
    assert "<pre><code>x &lt; y\n</code></pre>" in html


def test_thehive_case_links_of_merged_cases_point_at_case_pages() -> None:
    html = str(render_markdown("Merged from ([#3](#/case/AbC123/details))"))

    assert 'href="/cases/AbC123"' in html


def test_empty_or_missing_text_renders_nothing() -> None:
    assert str(render_markdown(None)) == ""
    assert str(render_markdown("")) == ""


def test_a_huge_text_is_shown_escaped_in_a_pre_block() -> None:
    source = "<script>" + "a" * MAX_RENDERED_LENGTH

    html = str(render_markdown(source))

    assert html.startswith("<pre>&lt;script&gt;")
    assert "<script" not in html
