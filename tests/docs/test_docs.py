"""The docs cannot rot: every ```bash block of docs/**/*.md runs (its ``biolm`` lines, with fast overrides), every
tutorial under tutorials/ runs with ``--fast`` and checks its own outputs, and `make docs` builds warning-free.

These are marked ``docs`` and left out of `make test` (they take minutes); `make docs` and CI run them
(``pytest -m docs``).

Conventions for docs pages:

- A ```bash block is run: each line starting with ``biolm`` (``\\`` continues a line, ``#`` starts a comment) is
  run in order through `biolm.cli.main`, in one scratch folder per page whose ``data`` links to the repository's,
  so repository paths read the bundled data and outputs (``runs/...``) stay in the scratch folder. Shell
  operators (pipes, redirections) are refused there: show such lines in a ```sh block, which is not run.
- Training commands get `FAST` overrides appended (a tiny budget); ``<!-- doc-test: key=value ... -->`` just
  before a block appends more to each of its ``biolm`` lines, and ``<!-- doc-test: skip -->`` skips the block.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
TUTORIALS = REPO / "tutorials"

pytestmark = pytest.mark.docs

# Appended to every run of these commands in the docs (later keys win in Hydra, so a page's own overrides of
# the same key would be replaced: pages set other keys).
_LIMITS = ["++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1"]  # ++: add or override, whatever the page set
FAST: dict[str, list[str]] = {
    "finetune": ["trainer.max_epochs=1", *_LIMITS, "schedule.min_steps=0", "progress_bar=false"],
    "pretrain": ["trainer.max_epochs=1", *_LIMITS, "progress_bar=false"],
    "sweep": ["n_trials=2", "trainer.max_epochs=1", *_LIMITS, "schedule.min_steps=0"],
    "benchmark": ["seeds=[0]", 'finetune=["trainer.max_epochs=1","++trainer.limit_train_batches=2","++trainer.limit_val_batches=1","schedule.min_steps=0"]'],
    "ner train": ["trainer.max_epochs=1", *_LIMITS, "progress_bar=false"],
    "llm sft": ["trainer.max_epochs=1", *_LIMITS, "++trainer.val_check_interval=1.0", "progress_bar=false"],
    "tokenizer train": ["max_bp=200000"],
}
_DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(?P<args>.*?)\s*-->")
_FENCE = re.compile(r"^```(?P<info>\w*)\s*$")
_OPERATOR = set("|&;<>()")


def blocks(path: Path) -> list[tuple[int, list[str], list[list[str]]]]:
    """``(line number, extra overrides, biolm argv lists)`` of the page's ```bash blocks (skipped ones left out).

    A ``doc-test`` directive applies to the block right after it (blank lines between are allowed).
    """
    out = []
    lines = path.read_text().splitlines()
    pending: str | None = None
    i = 0
    while i < len(lines):
        directive = _DIRECTIVE.search(lines[i])
        fence = _FENCE.match(lines[i])
        if directive:
            pending = directive["args"]
        elif fence and fence["info"]:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if fence["info"] == "bash" and pending != "skip":
                extra = shlex.split(pending) if pending else []
                out.append((start, extra, commands(body, path, start)))
            pending = None
        elif lines[i].strip():
            pending = None
        i += 1
    return out


def commands(body: list[str], path: Path, start: int) -> list[list[str]]:
    """The ``biolm`` command lines of a block as argv lists (without the leading ``biolm``).

    Raises:
        AssertionError: a shell operator on a ``biolm`` line, or ``biolm`` that does not start its line (an
            environment assignment, a prompt): such lines belong in a ```sh block.
    """
    joined, current = [], ""
    for line in body:
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        joined.append(current)
        current = ""
    out = []
    for line in joined:
        lexer = shlex.shlex(line.strip(), posix=True, punctuation_chars=True)
        lexer.whitespace_split, lexer.commenters = True, ""
        words = list(lexer)
        if "#" in [w[:1] for w in words]:
            words = words[: [w[:1] for w in words].index("#")]  # a comment starts at a word beginning with '#'
        if "biolm" not in words:
            continue
        where = f"{path}:{start}: `{line.strip()}`"
        if words[0] != "biolm":
            raise AssertionError(f"{where}: biolm must start the line in a ```bash block (the docs test runs it); use a ```sh block")
        if any(set(word) <= _OPERATOR for word in words):
            raise AssertionError(f"{where}: a shell operator in a ```bash block; put it in a ```sh block")
        out.append(words[1:])
    return out


def with_fast(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` plus the `FAST` overrides of its command and the block's own."""
    for length in (2, 1):
        name = " ".join(argv[:length])
        if name in FAST:
            return [*argv, *FAST[name], *extra]
    return [*argv, *extra]


# pages with a ```bash block (parsed in the test, so that a mistake in one page fails that page's test only)
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```bash" in p.read_text())


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_every_command_block_runs(page, tmp_path, monkeypatch):
    from biolm.cli import main

    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    for start, extra, argvs in blocks(page):
        for argv in argvs:
            full = with_fast(argv, extra)
            code = main(full)
            assert code == 0, f"{page.relative_to(REPO)}:{start}: `biolm {' '.join(full)}` exited {code}"


SCRIPTS = sorted(TUTORIALS.glob("*.py")) if TUTORIALS.is_dir() else []


@pytest.mark.parametrize("script", [s for s in SCRIPTS if not s.name.startswith("_")], ids=lambda s: s.name)
def test_every_tutorial_runs_fast(script, tmp_path):
    result = subprocess.run([sys.executable, str(script), "--fast", "--out", str(tmp_path / "out")], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{script.name} --fast exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (tmp_path / "out" / "summary.json").is_file(), f"{script.name} wrote no summary.json"


def test_the_docs_build_without_warnings(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")], cwd=REPO,
                            capture_output=True, text=True, timeout=600, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-4000:]


def test_the_harness_reads_blocks(tmp_path):
    page = tmp_path / "p.md"
    page.write_text(
        "```bash\nbiolm finetune a=1 \\\n  b=2   # trailing comment\npython x.py\nbiolm predict data.label_delimiter=# run=r\n```\n"
        "<!-- doc-test: c=3 -->\n\n```bash\nbiolm predict run=r\n```\n"
        "<!-- doc-test: d=4 -->\nsome prose\n```bash\nbiolm report run=r\n```\n"
        "<!-- doc-test: skip -->\n```bash\nbiolm serve run=r\n```\n```sh\nbiolm predict run=r | head\n```\n"
    )
    found = [(extra, argvs) for _, extra, argvs in blocks(page)]
    assert found == [
        ([], [["finetune", "a=1", "b=2"], ["predict", "data.label_delimiter=#", "run=r"]]),
        (["c=3"], [["predict", "run=r"]]),
        ([], [["report", "run=r"]]),  # the directive is not right before this block
    ]
    assert with_fast(["finetune", "a=1"], ["c=3"])[:2] == ["finetune", "a=1"] and with_fast(["finetune"], ["c=3"])[-1] == "c=3"
    for bad, words in (("biolm predict run=r | head", "shell operator"), ("biolm predict run=r >out.csv", "shell operator"),
                       ("OMP_NUM_THREADS=1 biolm predict run=r", "must start the line")):
        page.write_text(f"```bash\n{bad}\n```\n")
        with pytest.raises(AssertionError, match=words):
            blocks(page)


def test_fast_overrides_compose_over_a_page_that_sets_the_same_keys():
    from biolm.composition import compose

    argv = with_fast(["finetune", "+trainer.limit_train_batches=5", "experiment=demo_prom300"], [])
    cfg = compose(argv[0], argv[1:])
    assert cfg.trainer.limit_train_batches == 2 and cfg.trainer.max_epochs == 1
