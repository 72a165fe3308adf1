"""The CLI reference, generated from the command registry (`biolm.cli.HANDLERS`) and the commands' configs.

In: nothing (the installed commands and ``configs/``). Out: Markdown (`cli_reference_markdown`), one section per
command: its help line, the usage lines of its config's header, its config groups with their options, and a table
of its keys with defaults and the comments written beside them. The docs build (``docs/hooks.py``) inserts it into
``docs/reference/cli.md``, so the page cannot drift from the code; ``biolm <command> --cfg job`` prints the same
keys composed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from biolm.composition import CONFIG_SUBDIRS, config_file, group_options
from biolm.resources import config_dir

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w-]*):(?P<value>[^#]*)(?:#\s?(?P<comment>.*))?$")
_CONTINUED = re.compile(r"^ +#\s?(?P<comment>.*)$")
_DEFAULT = re.compile(r"^\s*-\s*(?:override\s+)?(?:optional\s+)?/?(?P<group>[\w/]+)\s*:\s*(?P<option>[^#\s]+)")


@dataclass
class ConfigKey:
    """One key of a command's config: dotted name, default as written, and the comment beside it."""

    name: str
    default: str
    comment: str


def config_keys(text: str) -> tuple[list[tuple[str, str]], list[ConfigKey]]:
    """``(defaults list as (group, option), keys)`` of a config file's text (its own keys, not the groups')."""
    groups: list[tuple[str, str]] = []
    keys: list[ConfigKey] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the mapping keys above the current line
    in_defaults = False
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if in_defaults:
            found = _DEFAULT.match(line)
            if found:
                if found["group"] != "_self_":
                    groups.append((found["group"], found["option"]))
                continue
            if line.lstrip().startswith("-"):
                continue
            in_defaults = False
        continued = _CONTINUED.match(line)
        if continued and keys:
            keys[-1].comment = f"{keys[-1].comment} {continued['comment'].strip()}".strip()
            continue
        found = _KEY.match(line)
        if not found:
            continue
        indent, key = len(found["indent"]), found["key"]
        if indent == 0 and key == "defaults":
            in_defaults = True
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        name = ".".join([*(k for _, k in stack), key])
        value = found["value"].strip()
        if not value:  # a mapping: its keys follow, indented
            stack.append((indent, key))
        keys.append(ConfigKey(name, value, (found["comment"] or "").strip()))
    return groups, keys


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "


def command_section(command: str, summary: str) -> list[str]:
    """The Markdown section of one command."""
    path = config_file(command)
    text = path.read_text()
    header = []
    for line in text.splitlines():  # the comment block that opens the file
        if not line.startswith("#"):
            break
        header.append(line[1:].strip())
    usage = [line for line in header[1:] if "biolm " in line]
    notes = [line for line in header[1:] if "biolm " not in line]
    root = config_dir() / CONFIG_SUBDIRS.get(command.split()[0], "")
    groups, keys = config_keys(text)
    lines = [f"## `biolm {command}`", "", f"{summary}.", ""]
    if usage:
        shown = []
        for line in usage:  # "then: biolm ..." -> a comment line, then the command
            lead, _, rest = line.partition("biolm ")
            shown += [f"# {lead.strip()}", f"biolm {rest}"] if lead.strip() else [line]
        lines += ["```sh", *shown, "```", ""]
    if notes:
        lines += [" ".join(notes), ""]
    if groups:
        lines += ["| group | default | options |", "|---|---|---|"]
        for group, option in groups:
            options = group_options(group, root)
            lines.append(f"| `{group}` | `{option}` | {', '.join(f'`{o}`' for o in options) or ' '} |")
        lines.append("")
    if keys:
        lines += ["| key | default | what it does |", "|---|---|---|"]
        lines += [f"| `{k.name}` | `{_cell(k.default)}` | {_cell(k.comment)} |" if k.default else f"| `{k.name}` | | {_cell(k.comment)} |" for k in keys]
        lines.append("")
    lines += [f"Config: `{path.relative_to(config_dir().parent).as_posix()}`.", ""]
    return lines


def cli_reference_markdown() -> str:
    """Every registered command's section, sorted by name (see the module docstring)."""
    from biolm.cli import HANDLERS, _summary

    lines = [
        "Every command is `biolm <command> [key=value ...]`: the keys below are Hydra overrides, groups are chosen "
        "with `group=option`, and `biolm <command> --cfg job` prints the composed config.",
        "",
    ]
    lines += [f"- [`biolm {name}`](#{_anchor(name)}): {_summary(name)}" for name in sorted(HANDLERS)]
    lines.append("")
    for name in sorted(HANDLERS):
        lines += command_section(name, _summary(name))
    return "\n".join(lines)


def _anchor(command: str) -> str:
    """The heading id MkDocs gives ``## `biolm <command>` ``."""
    return "biolm-" + command.replace(" ", "-")
