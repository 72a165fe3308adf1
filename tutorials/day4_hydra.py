"""Day 4: Hydra configs — groups, defaults lists, overrides, `_target_` + instantiate, interpolation, sweeps.

    python tutorials/day4_hydra.py             # the full run: a few minutes on 2 CPU cores (most of it the sweep)
    python tutorials/day4_hydra.py --fast      # seconds: the same steps, a 2-trial sweep of 2 batches each

First a tiny config tree of our own, written into --out/conf and composed with Hydra's compose API; its
objects are built with `hydra.utils.instantiate`, and a `@hydra.main` app runs a `--multirun` grid. Then the
same ideas in biolm's own tree (configs/): `biolm.composition.compose("finetune", [...])`, `--cfg job`, the
experiment config `configs/experiment/demo_prom300.yaml` spelled out as command-line overrides, and a small
Optuna sweep of the demo (`biolm sweep`, search space `configs/search_space/demo.yaml`).
Out, in --out (default runs/tutorials/day4_hydra/): conf/, multirun/, sweep/ (trials.csv, report.md,
experiment/best.yaml) and summary.json.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import sys
import textwrap
from pathlib import Path

from _common import arguments, check, write_summary

args = arguments(__doc__, "day4_hydra")

# After arguments(): it sets OMP_NUM_THREADS, which torch reads when it loads.
import hydra  # noqa: E402
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.core.global_hydra import GlobalHydra  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

CONF = args.out / "conf"

# --8<-- [start:tree]
# A config tree is a folder of YAML files. A sub-folder is a config GROUP (model/, optimizer/, experiment/):
# its files are interchangeable options, and exactly one of them is chosen (`model=mlp`).
TREE = {
    # The primary config. Its defaults list says which option of each group to compose, in order;
    # _self_ is this file's own keys, so what comes after it (an experiment) can override them.
    "train.yaml": """
        defaults:
          - model: linear
          - optimizer: adamw
          - _self_
          - optional experiment: null
        data:
          n_features: 16
          n_classes: 2
          n_samples: 256
        trainer:
          steps: 50
          lr: 1.0e-2
          seed: 0
    """,
    # _target_ names a class; instantiate() imports it and calls it with the other keys as arguments.
    # ${data.n_features} is an interpolation: the value of another key, resolved when it is read.
    "model/linear.yaml": """
        _target_: torch.nn.Linear
        in_features: ${data.n_features}
        out_features: ${data.n_classes}
    """,
    # Nested _target_s are built inside-out: three layers, then the Sequential that holds them.
    "model/mlp.yaml": """
        _target_: torch.nn.Sequential
        _args_:
          - {_target_: torch.nn.Linear, in_features: "${data.n_features}", out_features: 32}
          - {_target_: torch.nn.ReLU}
          - {_target_: torch.nn.Linear, in_features: 32, out_features: "${data.n_classes}"}
    """,
    # _partial_: true returns functools.partial(AdamW, lr=..., ...): the parameters come later, from code.
    "optimizer/adamw.yaml": """
        _target_: torch.optim.AdamW
        _partial_: true
        lr: ${trainer.lr}
        weight_decay: 0.01
    """,
    "optimizer/sgd.yaml": """
        _target_: torch.optim.SGD
        _partial_: true
        lr: ${trainer.lr}
        momentum: 0.9
    """,
    # An experiment: one file that changes group choices (override /model) and values at once. The
    # `# @package _global_` line puts its keys at the root of the config, not under experiment:.
    "experiment/wide_sgd.yaml": """
        # @package _global_
        defaults:
          - override /model: mlp
          - override /optimizer: sgd
        trainer:
          lr: 0.05
          steps: 100
    """,
}
for name, text in TREE.items():
    (CONF / name).parent.mkdir(parents=True, exist_ok=True)
    (CONF / name).write_text(textwrap.dedent(text).lstrip())
# --8<-- [end:tree]


# --8<-- [start:compose]
def compose_train(overrides: list[str]):
    """Compose conf/train.yaml with command-line style overrides (what @hydra.main does, without running a job)."""
    GlobalHydra.instance().clear()  # compose() needs a fresh initialisation each time in one process
    with initialize_config_dir(config_dir=str(CONF.resolve()), version_base=None):
        return compose(config_name="train", overrides=overrides)


default = compose_train([])
print(OmegaConf.to_yaml(default))  # interpolations are shown unresolved: ${data.n_features}
changed = compose_train([
    "model=mlp",               # choose another option of a group
    "trainer.lr=0.001",        # change a value
    "data.n_features=8",       # every ${data.n_features} follows
    "+trainer.note=tried",     # + adds a key that the config does not have
])
experiment = compose_train(["experiment=wide_sgd"])
print("model:", changed.model._target_, "| lr:", changed.optimizer.lr, "| first layer in_features:",
      changed.model._args_[0].in_features, "| experiment=wide_sgd ->", experiment.optimizer._target_, experiment.trainer.lr)
# --8<-- [end:compose]
check(default.model._target_ == "torch.nn.Linear" and changed.model._target_ == "torch.nn.Sequential", "model= chooses the group option")
check(changed.optimizer.lr == 0.001 and changed.model._args_[0].in_features == 8, "interpolations follow overrides")
check(experiment.optimizer._target_ == "torch.optim.SGD" and experiment.trainer.lr == 0.05, "the experiment overrides groups and values")
try:
    compose_train(["trainer.lr_typo=1"])
    typo_refused = False
except Exception as err:  # noqa: BLE001 - Hydra's ConfigCompositionException
    typo_refused = True
    print("a typo is refused:", str(err).splitlines()[0])
check(typo_refused, "an override of a key that does not exist is an error, not a silent new key")


# --8<-- [start:instantiate]
def train(cfg) -> float:
    """Build the model and optimiser from the config and fit a toy problem; returns the final training loss."""
    torch.manual_seed(cfg.trainer.seed)
    x = torch.randn(cfg.data.n_samples, cfg.data.n_features)
    y = (x[:, 0] + x[:, 1] > 0).long()  # a rule the model can learn
    model = instantiate(cfg.model)  # torch.nn.Linear(in_features=16, out_features=2), or the Sequential
    optimizer = instantiate(cfg.optimizer)(model.parameters())  # the partial, completed with the parameters
    for _ in range(cfg.trainer.steps):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return loss.item()


losses = {name: train(cfg) for name, cfg in [("default", default), ("experiment=wide_sgd", experiment)]}
print("final training loss:", {k: round(v, 4) for k, v in losses.items()})
# --8<-- [end:instantiate]
check(all(v < 0.6 for v in losses.values()), f"both configs should learn the toy rule (loss < ln 2): {losses}")

# --8<-- [start:multirun]
# A Hydra application: @hydra.main composes the config from the command line and calls the function with it.
# With --multirun, comma-separated values make a grid and Hydra runs one job per combination, each in its
# own folder with the config it used (.hydra/config.yaml) and the overrides that made it (.hydra/overrides.yaml).
# From a shell this would be `python app.py --multirun model=linear,mlp optimizer=adamw,sgd`; here we hand
# Hydra that command line through sys.argv, to run it inside this process.
@hydra.main(config_path=str(CONF.resolve()), config_name="train", version_base=None)
def app(cfg) -> None:
    (Path.cwd() / "result.json").write_text(json.dumps({"loss": train(cfg)}))  # hydra.job.chdir: cwd = the job's folder


grid = ["model=linear,mlp", "optimizer=adamw,sgd"]  # 2 x 2 = 4 jobs
quiet = ["hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]  # Hydra would set up logging per job
GlobalHydra.instance().clear()
command_line, cwd = sys.argv, Path.cwd()
sys.argv = ["app.py", "--multirun", *grid, f"hydra.sweep.dir={args.out.resolve() / 'multirun'}", "hydra.job.chdir=true", *quiet]
app()
sys.argv = command_line
jobs = sorted((args.out / "multirun").glob("[0-9]*/result.json"), key=lambda p: int(p.parent.name))
for job in jobs:
    overrides = " ".join(OmegaConf.load(job.parent / ".hydra" / "overrides.yaml"))
    print(f"job {job.parent.name}: {overrides:30s} -> final loss {json.loads(job.read_text())['loss']:.4f}")
# --8<-- [end:multirun]
check(len(jobs) == 4, f"--multirun over a 2 x 2 grid runs 4 jobs (found {len(jobs)})")
check(Path.cwd() == cwd, "Hydra returns to the working folder after its jobs")

# --8<-- [start:biolm]
# biolm's configs/ is the same kind of tree: groups model/, tokenizer/, data/, task/, trainer/, experiment/ ...
# `biolm finetune k=v ...` is compose("finetune", [k=v ...]) and then the training; nothing else sets a default.
from biolm.cli import main as biolm_main  # noqa: E402
from biolm.composition import compose as biolm_compose  # noqa: E402
from biolm.errors import BiolmError  # noqa: E402

cfg = biolm_compose("finetune", ["experiment=demo_prom300"])
print("tokenizer:", cfg.tokenizer._target_, "| trunk:", cfg.model.trunk._target_, "| task:", cfg.task._target_,
      "| epochs:", cfg.trainer.max_epochs, "| lr:", cfg.optim.lr)
tokenizer = instantiate(cfg.tokenizer)  # a config section becomes an object, as in our own tree
ids = tokenizer.encode("TATAAAAGG").tolist()
token_of = {i: token for token, i in tokenizer.vocab.items()}
print("the demo's tokenizer reads TATAAAAGG as", [token_of[i] for i in ids], ids)

# `biolm finetune experiment=demo_prom300 --cfg job` prints the composed config and exits.
with contextlib.redirect_stdout(io.StringIO()) as shown:
    biolm_main(["finetune", "experiment=demo_prom300", "--cfg", "job"])
lines = shown.getvalue().splitlines()
print("\n".join(lines[lines.index("model:") : lines.index("task:")]))  # its model section

# The experiment file is only a bundle of overrides: the same command line, spelled out, gives the same config.
spelled_out = biolm_compose("finetune", ["data=gue_prom_300_tata", "tokenizer=kmer3_stride3", "model=bert_tiny", "task=binary",
                                         "run_name=demo_prom300_bert", "trainer.max_epochs=8", "optim.lr=1e-3"])
same = OmegaConf.to_container(spelled_out) == OmegaConf.to_container(cfg)
print("experiment=demo_prom300 == its overrides spelled out:", same)

# A choice can imply others: model=cnn brings the `recommended:` keys of configs/model/cnn.yaml (tokenizer=char).
print("model=cnn -> tokenizer:", biolm_compose("finetune", ["model=cnn"]).tokenizer._target_)
try:
    biolm_compose("finetune", ["optim.learning_rate=1e-3"])
except BiolmError as err:  # biolm's one error type: one line that says what would be accepted
    print("a typo:", err)
# --8<-- [end:biolm]
check(same, "experiment=demo_prom300 composes to the same config as its overrides spelled out")
check("recipe:" in shown.getvalue(), "--cfg job prints the composed config")

# --8<-- [start:sweep]
# A sweep searches values instead of listing them: `biolm sweep` runs Optuna (seeded TPE sampling, median
# pruning) over the finetune keys of a search space (configs/search_space/demo.yaml: lr, width, dropouts).
# Every finetune override holds for every trial; here a CPU budget: a few batches per epoch.
from biolm import api  # noqa: E402
from biolm.sweep_report import TRIAL_COLUMNS  # noqa: E402

if args.fast:
    budget = ["n_trials=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
              "+trainer.limit_test_batches=1"]
else:
    budget = ["n_trials=5", "trainer.max_epochs=2", "+trainer.limit_train_batches=30"]  # 2 x 30 batches of 32 per trial
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no start-up notes from every trial's Trainer
shutil.rmtree(args.out / "sweep", ignore_errors=True)  # a fresh study each run (the same output would continue it)
sweep_cfg = biolm_compose("sweep", ["experiment=demo_prom300", "search_space=demo", *budget, "schedule.min_steps=0",
                                    "task.monitor=auroc", "progress_bar=false", "+trainer.enable_model_summary=false", f"output={args.out / 'sweep'}"])
result = api.run_sweep(sweep_cfg)  # what `biolm sweep ...` calls; the same command again continues the study
columns = ["number", "state", "value", "validations", *[c for c in result.trials.columns if c not in TRIAL_COLUMNS]]
print(result.trials[columns].round(4).to_string(index=False))
print(f"best validation AUROC {result.best_value:.4f} (trial {result.best_trial}); train it again with:")
print(result.command)
# --8<-- [end:sweep]
trials = result.trials
check((args.out / "sweep" / "experiment" / "best.yaml").is_file(), "the sweep writes its best trial as an experiment config")
check(len(trials) == (1 if args.fast else 5) and (trials.state == "COMPLETE").any(), "the sweep's trials ran")

write_summary(args, "day4_hydra", {
    "multirun_jobs": len(jobs),
    "toy_loss_default": round(losses["default"], 4),
    "toy_loss_experiment": round(losses["experiment=wide_sgd"], 4),
    "experiment_equals_overrides": bool(same),
    "sweep_trials": int(len(trials)),
    "sweep_complete": int((trials.state == "COMPLETE").sum()),
    "sweep_pruned": int((trials.state == "PRUNED").sum()),
    "sweep_best_val_auroc": round(float(result.best_value), 4),
    "sweep_first_val_auroc": round(float(result.first_value), 4),
})
