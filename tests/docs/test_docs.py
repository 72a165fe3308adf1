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
FAST: dict[str, list[str]] = {
    "finetune": ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "schedule.min_steps=0", "progress_bar=false"],
    "pretrain": ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "progress_bar=false"],
    "sweep": ["n_trials=2", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "schedule.min_steps=0"],
    "benchmark": ["seeds=[0]", 'finetune=["trainer.max_epochs=1","+trainer.limit_train_batches=2","+trainer.limit_val_batches=1","schedule.min_steps=0"]'],
    "ner train": ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "progress_bar=false"],
    "llm sft": ["trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1", "progress_bar=false"],
    "tokenizer train": ["max_bp=200000"],
}
_DIRECTIVE = re.compile(r"<!--\s*doc-test:\s*(?P<args>.*?)\s*-->")
_FENCE = re.compile(r"^```(?P<info>\w*)\s*$")
_SHELL = re.compile(r"(?<![\w'\"=])(\||>|<|&&|;)(?![\w'\"])")


def blocks(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """``(line number, extra overrides, biolm argv lists)`` of the page's ```bash blocks (skipped ones left out)."""
    out = []
    lines = path.read_text().splitlines()
    pending: str | None = None
    i = 0
    while i < len(lines):
        directive = _DIRECTIVE.search(lines[i])
        if directive:
            pending = directive["args"]
        fence = _FENCE.match(lines[i])
        if fence and fence["info"]:
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if fence["info"] == "bash" and pending != "skip":
                extra = shlex.split(pending) if pending else []
                out.append((start, extra, commands(body, path, start)))
            pending = None
        i += 1
    return out


def commands(body: list[str], path: Path, start: int) -> list[list[str]]:
    """The ``biolm`` command lines of a block as argv lists (without the leading ``biolm``)."""
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
        text = line.strip()
        if not text.startswith("biolm "):
            continue
        words = shlex.split(text, comments=True)
        if any(_SHELL.fullmatch(word) for word in words):
            raise AssertionError(f"{path}:{start}: a shell operator in a ```bash block ({text}); put it in a ```sh block")
        out.append(words[1:])
    return out


def with_fast(argv: list[str], extra: list[str]) -> list[str]:
    """``argv`` plus the `FAST` overrides of its command and the block's own."""
    for length in (2, 1):
        name = " ".join(argv[:length])
        if name in FAST:
            return [*argv, *FAST[name], *extra]
    return [*argv, *extra]


PAGES = sorted(p for p in DOCS.rglob("*.md") if blocks(p))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_every_command_block_runs(page, tmp_path, monkeypatch):
    from biolm.cli import main

    (tmp_path / "data").symlink_to(REPO / "data")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "2"))
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
        "```bash\nbiolm finetune a=1 \\\n  b=2   # trailing comment\npython x.py\n```\n"
        "<!-- doc-test: c=3 -->\n```bash\nbiolm predict run=r\n```\n"
        "<!-- doc-test: skip -->\n```bash\nbiolm serve run=r\n```\n```sh\nbiolm predict run=r | head\n```\n"
    )
    found = blocks(page)
    assert [(extra, argvs) for _, extra, argvs in found] == [([], [["finetune", "a=1", "b=2"]]), (["c=3"], [["predict", "run=r"]])]
    assert with_fast(["finetune", "a=1"], ["c=3"])[:2] == ["finetune", "a=1"] and with_fast(["finetune"], ["c=3"])[-1] == "c=3"
    page.write_text("```bash\nbiolm predict run=r | head\n```\n")
    with pytest.raises(AssertionError, match="shell operator"):
        blocks(page)
