"""``biolm agent``: registered on `biolm.cli` like every other command; its config is ``configs/text/agent.yaml``."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig

from biolm.cli import _console, _required, command


@command
def cmd_agent(cfg: DictConfig) -> None:
    from rich.markdown import Markdown

    from biolm.errors import BiolmError
    from biolm.runs import default_run_name
    from biolm.text.agent import NO_GENERATOR, run_agent
    from biolm.text.agent_tools import Toolbox
    from biolm.text.generators import build_generator

    task = _required(cfg, "task", 'pass task="<what to do, in words>"')
    generator = build_generator(cfg.generator)
    if generator is None:
        raise BiolmError(NO_GENERATOR)
    toolbox = Toolbox(**{key: str(cfg[key]) if cfg.get(key) else None for key in ("run", "reference", "ner_run", "kb")})
    if cfg.get("tools"):
        names = [str(n) for n in cfg.tools] if isinstance(cfg.tools, ListConfig) else [str(cfg.tools)]
    else:  # the tools whose folders are set
        names = toolbox.usable()
        if not names:
            raise BiolmError("the agent has no tool to use: set run= (and reference=), ner_run= or kb= (or tools=[...] explicitly)")
    tools = toolbox.tools(names)
    transcript = Path(str(cfg.transcript)) if cfg.get("transcript") else Path("runs") / f"{default_run_name('agent')}.jsonl"
    result = run_agent(task, generator, tools, int(cfg.max_steps), int(cfg.max_new_tokens), transcript)
    console = _console()
    console.print(Markdown(result.answer) if result.answer.strip() else "[dim](no answer)[/dim]")
    console.print(f"[dim]{result.steps} step(s), stopped: {result.stopped_reason}; transcript: {result.transcript}[/dim]")
