"""Zero-shot variant scores straight from a public masked-LM checkpoint folder (`model.pretrained=`, no run):
a tiny DNABERT-2 folder (BPE tokens, MosaicBERT layout) on bundled ClinVar BRCA1 SNVs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from biolm.api import load_pretrained_language_model, score_variants
from biolm.cli import main
from biolm.errors import BiolmError
from biolm.variants import Reference
from biolm.variants.sequences import variant_windows
from tests.checkpoints import REPO, write_tiny_dnabert2

CLINVAR = REPO / "data" / "variants" / "clinvar_brca_grch38"
REF = CLINVAR / "chr17_42425000-43600000.GRCh38.fa.gz"
WINDOW_BP = 128


@pytest.fixture(scope="module")
def dnabert2(tmp_path_factory):
    return write_tiny_dnabert2(tmp_path_factory.mktemp("ckpt") / "dnabert2")


@pytest.fixture(scope="module")
def brca1_snvs() -> pd.DataFrame:
    """Six ClinVar BRCA1 SNVs (bundled window, GRCh38) and one 'variant' whose alt equals its ref."""
    windows = pd.read_csv(REPO / "data/variants/clinvar_brca1_windows_256/test.csv.gz", dtype={"chrom": str})
    rows = windows[["chrom", "pos", "ref", "alt", "label"]].iloc[::50].head(6).reset_index(drop=True)
    same = rows.iloc[[0]].assign(alt=rows["ref"].iloc[0], pos=rows["pos"].iloc[0])
    return pd.concat([rows, same], ignore_index=True)


def _masked_log_likelihood(lm, window: str, offset: int) -> float:
    """Reference: mask the tokens over base `offset`, one full forward pass, sum log p(own token) over them."""
    ids = torch.from_numpy(lm.tokenizer.encode_batch([window])[0])
    lo, hi = lm.tokenizer.tokens_covering(window, offset, offset + 1)
    masked = ids.clone()
    masked[lo:hi] = lm.tokenizer.mask_id
    with torch.no_grad():
        logp = torch.log_softmax(lm.model(masked[None], torch.ones(1, len(ids), dtype=torch.bool)).logits[0].double(), dim=-1)
    return float(sum(logp[t, ids[t]] for t in range(lo, hi)))


def test_zero_shot_scores_from_a_dnabert2_folder_match_a_plain_reference(dnabert2, brca1_snvs):
    lm = load_pretrained_language_model(dnabert2)
    assert lm.objective == "mlm" and lm.tokenizer.vocab_size == 4096
    reference = Reference(REF)
    scores = score_variants(lm, brca1_snvs, reference, window_bp=WINDOW_BP, batch_size=4)
    assert (scores["method"] == "mlm_masked_marginal").all() and np.isfinite(scores["score"]).all()
    assert scores["score"].iloc[-1] == 0.0  # alt == ref: the two masked windows are one input
    assert scores["score"].iloc[:-1].abs().min() > 0
    windows = variant_windows(brca1_snvs, reference, WINDOW_BP)
    expected = [
        _masked_log_likelihood(lm, alt, off) - _masked_log_likelihood(lm, ref, off)
        for ref, alt, off in zip(windows.ref, windows.alt, windows.offset)
    ]
    np.testing.assert_allclose(scores["score"], expected, rtol=1e-4, atol=1e-4)
    # batching never changes a score
    np.testing.assert_allclose(score_variants(lm, brca1_snvs, reference, window_bp=WINDOW_BP, batch_size=1)["score"], scores["score"], atol=1e-5)


def test_variants_score_and_ism_cli_take_a_checkpoint_folder(dnabert2, brca1_snvs, tmp_path):
    table = tmp_path / "v.csv"
    brca1_snvs.iloc[:-1].to_csv(table, index=False)
    out = tmp_path / "scores.tsv"
    assert main(["variants", "score", f"model.pretrained={dnabert2}", f"vcf={table}", f"ref={REF}", f"window_bp={WINDOW_BP}", f"out={out}"]) == 0
    scores = pd.read_csv(out, sep="\t")
    assert len(scores) == 6 and np.isfinite(scores["score"]).all() and (scores["model"] == str(dnabert2)).all()
    assert main(["variants", "score", f"model.pretrained={dnabert2}", "run=runs/x", f"vcf={table}", f"ref={REF}", f"out={out}"]) == 2
    ism = tmp_path / "ism"
    assert main(["variants", "ism", f"model.pretrained={dnabert2}", f"ref={REF}", "region=17:43094000-43094002", f"window_bp={WINDOW_BP}", f"out={ism}"]) == 0
    mutations = pd.read_csv(ism / "ism.tsv", sep="\t")
    assert len(mutations) == 9 and np.isfinite(mutations["score"]).all() and (ism / "ism.png").is_file()


def test_a_checkpoint_without_an_mlm_head_is_refused_for_scoring(tmp_path):
    folder = write_tiny_dnabert2(tmp_path / "no_head", mlm_head=False)
    with pytest.raises(BiolmError, match=r"no MLM head \(cls.predictions"):
        load_pretrained_language_model(folder)
