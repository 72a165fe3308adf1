"""MkDocs hook: pages holding ``<!-- biolm:cli-reference -->`` get the CLI reference generated from the code
(`biolm.cli_reference`), so the page cannot drift from the commands and their configs."""

from __future__ import annotations

MARKER = "<!-- biolm:cli-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    from biolm.cli_reference import cli_reference_markdown

    return markdown.replace(MARKER, cli_reference_markdown())
