"""Data-derived text made inert in markdown: the one place that escapes it.

Column names, category values, check names and partition keys come from users' data. Put raw
into a markdown table, explanation or summary, a ``|`` splits a table cell, a newline ends a row,
``[x](https://…)`` renders a link, ``<img …>`` is HTML, and ``**`` or a backtick rewrites the
formatting around it. Every string that did not come from corrmon's own code goes through
:func:`escape_markdown` (running text, table cells) or :func:`markdown_code` (an inline code
span) before it joins markdown.

Pure string functions: ``core/`` builds explanations without Dagster, and ``metadata.py``
re-exports both for the Dagster layer.
"""

import re

# Every character that can start or end markdown syntax inline (CommonMark allows a backslash
# before any ASCII punctuation, so escaping one that needed none is harmless).
_SPECIAL = re.compile(r"([\\`*_\[\]{}#|~!])")
# Control characters (ANSI escape sequences, carriage returns, ...) have no place in a label.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with line breaks as spaces and control characters as ``\\xNN``: safe on one line
    of markdown, and of a terminal (no ANSI escape sequence reaches it)."""
    flat = " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text
    return _CONTROL.sub(lambda found: f"\\x{ord(found.group()):02x}", flat)


def escape_markdown(value: object) -> str:
    """``str(value)`` as literal markdown text: on one line, no syntax, no HTML.

    ``&``, ``<`` and ``>`` become entities (no raw HTML, no autolink); markdown punctuation gets a
    backslash; line breaks become spaces and control characters ``\\xNN``, so a value stays in
    its table cell or sentence.
    """
    text = one_line(str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", text)


def markdown_code(value: object, *, in_table: bool = False) -> str:
    """``str(value)`` as one inline code span, whatever backticks it holds.

    Inside a code span nothing is interpreted, but a backtick run of the fence's length would
    close it: the fence is one backtick longer than the longest run inside. In a GFM table a
    ``|`` splits the cell even inside code, so ``in_table`` writes it ``\\|`` (which the table
    parser, and only it, turns back into ``|``).
    """
    text = one_line(str(value))
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{padding}{text}{padding}{fence}"
