"""The generated CLI reference (docs/reference/cli.md) covers every registered command, its groups and keys."""

from __future__ import annotations

from biolm.cli import HANDLERS
from biolm.cli_reference import cli_reference_markdown, config_keys


def test_every_command_has_a_section_with_its_keys():
    text = cli_reference_markdown()
    for name in HANDLERS:
        assert f"## `biolm {name}`" in text
    finetune = text[text.index("## `biolm finetune`") : text.index("## `biolm gp cv`")]
    assert "| `model` | `bert_tiny` |" in finetune and "`hyena_tiny`" in finetune  # a group, its default and options
    assert "| `data.bucket_pool` | `50` |" in finetune


def test_config_keys_reads_nesting_defaults_and_continued_comments():
    text = (
        "# biolm x: y\ndefaults:\n  - _self_\n  - model: a\n  - optional debug: null\n"
        "top: 1            # first\nblock:            # a mapping\n  inner: [1, 2]    # nested\n"
        "                  # continued\nlast: null\n"
    )
    groups, keys = config_keys(text)
    assert groups == [("model", "a"), ("debug", "null")]
    assert [(k.name, k.default, k.comment) for k in keys] == [
        ("top", "1", "first"), ("block", "", "a mapping"), ("block.inner", "[1, 2]", "nested continued"), ("last", "null", ""),
    ]
