"""Data-derived text stays literal in markdown (oracle: markdown-it-py, CommonMark + GFM tables)."""

import html

import pytest
from markdown_it import MarkdownIt

from dagster_corrmon.metadata import escape_markdown, markdown_code

HOSTILE = [
    "a|b",
    "[click](https://evil.example)",
    "<img src=x onerror=alert(1)>",
    "**bold** _em_ `code`",
    "line\nbreak | next",
    "# heading",
    "&lt;already&gt; &amp;",
    "back\\slash\\|",
    "``double``",
    "\x1b[31mred\x1b[0m",
    "![img](http://x/y.png)",
    "~~gone~~",
    "<https://autolink.example>",
]


def _render(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def _visible(value: str) -> str:
    """What a reader should see: the value on one line, control characters as \\xNN."""
    flat = " ".join(value.splitlines())
    return "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in flat)


@pytest.mark.parametrize("value", HOSTILE)
def test_escaped_text_renders_as_itself(value: str) -> None:
    rendered = _render(f"cause: {escape_markdown(value)}")
    assert rendered == f"<p>cause: {html.escape(_visible(value), quote=False)}</p>\n"


@pytest.mark.parametrize("value", HOSTILE)
def test_escaped_text_keeps_a_table_cell(value: str) -> None:
    cells = f"| {escape_markdown(value)} | {markdown_code(value, in_table=True)} |"
    table = f"| column | value |\n|---|---|\n{cells}\n"
    rendered = _render(table)
    body = rendered.split("<tbody>")[1]
    assert body.count("<td>") == 2
    assert "<a " not in rendered and "<img" not in rendered and "<strong>" not in rendered
    assert f"<td>{html.escape(_visible(value), quote=False)}</td>" in body
    assert f"<code>{html.escape(_visible(value), quote=False)}</code>" in body


@pytest.mark.parametrize("value", HOSTILE)
def test_code_span_renders_as_itself(value: str) -> None:
    rendered = _render(f"cause {markdown_code(value)} here")
    assert (
        rendered == f"<p>cause <code>{html.escape(_visible(value), quote=False)}</code> here</p>\n"
    )
