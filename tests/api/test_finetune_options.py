"""Fine-tuning options of issue 4: LoRA (only adapter and head train; merged == unmerged),
long inputs (whole == hand-aggregated windows), reverse-complement averaging, class weights,
head learning rate, bf16 on CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from biolm import api
from biolm.cli import compose, main
from biolm.data.genome import reverse_complement
from biolm.models.adapters import is_adapted
from biolm.tasks.sequence import class_weights

TINY_HYENA_PRETRAIN = [
    "model=hyena_tiny",
    "tokenizer=char",
    "model.trunk.d_model=32",
    "model.trunk.n_layer=2",
    "model.trunk.max_seq_len=256",
    "data.window_bp=200",
    "data.windows_per_epoch=32",
    "data.val_windows=4",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "trainer.accelerator=cpu",
    "progress_bar=false",
    "baseline.markov_order=0",
]


@pytest.fixture(scope="module")
def pretrained(genome, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre")
    cfg = compose("pretrain", [f"data.fasta={genome}", f"output_dir={out}", "run_name=hyena", *TINY_HYENA_PRETRAIN])
    return api.pretrain(cfg)


def _finetune(tiny_task, out, name, *extra):
    cfg = compose(
        "finetune",
        [
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "trainer.max_epochs=2",
            "trainer.accelerator=cpu",
            "progress_bar=false",
            "data.batch_size=16",
            "early_stopping.patience=0",
            f"output_dir={out}",
            f"run_name={name}",
            *extra,
        ],
    )
    return api.finetune(cfg)


@pytest.fixture(scope="module")
def lora_run(pretrained, tiny_task, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    return _finetune(tiny_task, out, "lora", f"init_from={pretrained}", "model=hyena_tiny", "adapter=lora", "adapter.r=4", "optim.lr=5e-3")


def test_lora_trains_only_the_adapter_and_the_head(lora_run, pretrained):
    assert not (lora_run / "model.safetensors").exists()
    saved = load_file(str(lora_run / "adapter" / "adapter_model.safetensors"))
    assert saved and all("lora_" in key or "head.out" in key for key in saved)
    assert any(float(t.abs().sum()) > 0 for k, t in saved.items() if "lora_B" in k)  # B starts at 0: it trained
    run = api.load_run(lora_run)
    assert is_adapted(run.model)
    base = load_file(str(pretrained / "model.safetensors"))
    for name, tensor in run.model.get_base_model().trunk.state_dict().items():
        if "lora_" in name:
            continue
        key = "trunk." + name.replace(".base_layer", "")
        torch.testing.assert_close(tensor, base[key], rtol=0, atol=0, msg=key)  # frozen base untouched
    metrics = json.loads((lora_run / "test_metrics.json").read_text())
    assert metrics["trainable_params"] / metrics["total_params"] < 0.1
    size = (lora_run / "adapter" / "adapter_model.safetensors").stat().st_size
    assert size < 0.2 * (pretrained / "model.safetensors").stat().st_size


def test_merged_adapter_predicts_like_the_adapter(lora_run, tiny_task, tmp_path):
    merged = tmp_path / "merged"
    assert main(["adapter", "merge", f"run={lora_run}", f"out={merged}"]) == 0
    assert (merged / "model.safetensors").exists() and not (merged / "adapter").exists()
    seqs = [line.split(",")[0] for line in tiny_task["test"].read_text().splitlines()[1:]]
    a = api.predict(lora_run, seqs)
    b = api.predict(merged, seqs)
    np.testing.assert_allclose(a["prob_1"], b["prob_1"], rtol=1e-4, atol=1e-5)
    assert main(["adapter", "merge", f"run={merged}", f"out={tmp_path / 'again'}"]) == 2  # not a LoRA run


def test_adapter_without_pretrained_weights_is_refused(tiny_task, tmp_path, capsys):
    code = main(["finetune", "adapter=lora", f"data.train={tiny_task['train']}", f"output_dir={tmp_path}"])
    assert code == 2 and "init_from" in capsys.readouterr().err


def test_a_long_sequence_predicts_as_its_windows_aggregated_by_hand(tiny_task, tmp_path, tiny_model_overrides):
    run_dir = _finetune(tiny_task, tmp_path, "win", "tokenizer=char", "data.window_bp=20", "data.window_stride_bp=10", *tiny_model_overrides[:4])
    run = api.load_run(run_dir)
    rng = np.random.default_rng(0)
    long_seq = "".join(rng.choice(list("ACGT"), 200))  # 10x the window
    pieces = [long_seq[s : s + 20] for s in range(0, 181, 10)]  # 19 windows, the last ending at 200
    per_window = api.predict(run, pieces)["prob_1"].to_numpy()
    for how, expected in (("mean", per_window.mean()), ("max", per_window.max())):
        whole = api.predict(run, [long_seq], aggregate=how)["prob_1"].iloc[0]
        assert whole == pytest.approx(expected, abs=1e-6)
    cfg = json.loads((run_dir / "test_metrics.json").read_text())
    assert cfg["n_test"] == 32


def test_rc_average_is_the_mean_of_both_strands(tiny_task, tmp_path, tiny_model_overrides):
    run = api.load_run(_finetune(tiny_task, tmp_path, "rc", "tokenizer=kmer3", "data.augment.rc_prob=0.5", *tiny_model_overrides[:4]))
    seqs = ["ACGTTGCAAGGCTTACGATCGATCGGATCCA", "TTTTGGGGCCCCAAAATATATGCGC"]
    fwd = api.predict(run, seqs)["prob_1"].to_numpy()
    rev = api.predict(run, [reverse_complement(s) for s in seqs])["prob_1"].to_numpy()
    both = api.predict(run, seqs, rc_average=True)["prob_1"].to_numpy()
    np.testing.assert_allclose(both, (fwd + rev) / 2, atol=1e-6)


def test_balanced_class_weights_known_answers():
    w = class_weights("binary", np.array([0, 0, 0, 1]), "balanced", 2)
    torch.testing.assert_close(w, torch.tensor([4 / 6, 4 / 2]))
    w = class_weights("multilabel", np.array([[1, 0], [1, 1], [0, 0], [1, 0]]), "balanced", 2)
    torch.testing.assert_close(w, torch.tensor([1 / 3, 3.0]))
    assert class_weights("multiclass", np.array([0, 1]), [1, 2, 3], 3).tolist() == [1.0, 2.0, 3.0]


def test_class_weights_head_lr_and_bf16_run_from_the_cli(tiny_task, tmp_path, tiny_model_overrides):
    code = main(
        [
            "finetune",
            f"data.train={tiny_task['train']}",
            f"data.val={tiny_task['dev']}",
            f"data.test={tiny_task['test']}",
            "tokenizer=kmer3",
            "task.class_weights=balanced",
            "optim.head_lr=1e-2",
            "trainer.precision=bf16-mixed",
            "trainer.accumulate_grad_batches=2",
            "model.trunk.gradient_checkpointing=true",
            "debug=fast_dev_run",
            f"output_dir={tmp_path}",
            "run_name=knobs",
            *tiny_model_overrides[:4],
        ]
    )
    assert code == 0
    assert (tmp_path / "knobs" / "report.md").exists()


def test_head_lr_makes_its_own_parameter_groups():
    from types import SimpleNamespace

    from biolm.tasks.sequence import configure_adamw

    model = torch.nn.Module()
    model.trunk = torch.nn.Linear(2, 2)
    model.head = torch.nn.Linear(2, 1)
    module = SimpleNamespace(model=model, trainer=SimpleNamespace(estimated_stepping_batches=10))
    optimizer = configure_adamw(module, 1e-4, 0.01, 0.1, (0.9, 0.98), head_lr=1e-2)["optimizer"]
    lrs = {id(p): group["initial_lr"] if "initial_lr" in group else group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lrs[id(model.head.weight)] == 1e-2 and lrs[id(model.trunk.weight)] == 1e-4


def test_an_adapter_refuses_changed_base_weights(lora_run, pretrained, tmp_path):
    import shutil

    from safetensors.torch import save_file

    from biolm.errors import BiolmError

    base, run = tmp_path / "base", tmp_path / "run"
    shutil.copytree(pretrained, base)
    shutil.copytree(lora_run, run)
    record = json.loads((run / "adapter" / "base.json").read_text())
    record.update(init_from=str(base), init_from_resolved=str(base))
    (run / "adapter" / "base.json").write_text(json.dumps(record))
    assert api.load_run(run) is not None
    state = load_file(str(base / "model.safetensors"))
    first = next(iter(state))
    state[first] = state[first] + 1.0
    save_file(state, str(base / "model.safetensors"))
    with pytest.raises(BiolmError, match="changed since the adapter was trained"):
        api.load_run(run)


def test_init_from_another_family_adopts_the_pretrained_head_settings(pretrained, tiny_task, tmp_path):
    from omegaconf import OmegaConf

    run = _finetune(tiny_task, tmp_path, "adopt", f"init_from={pretrained}", "trainer.max_epochs=0")  # default model=bert_tiny
    cfg = OmegaConf.load(run / "config.yaml")
    assert cfg.model.trunk._target_.endswith("HyenaEncoder") and cfg.model.head.pooling == "last"


def test_cls_pooling_on_a_causal_trunk_is_refused():
    from omegaconf import OmegaConf

    from biolm.errors import BiolmError
    from biolm.models import build_sequence_model

    cfg = OmegaConf.load(Path(__file__).resolve().parents[2] / "configs" / "model" / "hyena_tiny.yaml")
    cfg.head.pooling = "cls"
    with pytest.raises(BiolmError, match="pooling=last"):
        build_sequence_model(cfg, 12, 0, 2)
