"""Genomic prediction: SNP genotypes -> phenotypes with gMLP, MLP and classic baselines on shared CV folds.

`gp_cross_validate(cfg)` runs repeated k-fold CV of every selected model on every trait;
`gp_fit(cfg)` fits one model on one trait and writes a run folder; `gp_predict(run, genotypes)`
predicts new lines from it. Readers, filters and encodings live in `data` and `preprocess`;
the classic models (RR-BLUP, GBLUP, RKHS, pedigree BLUP) in `baselines`; Lightning training of
the deep models in `deep`.
"""

from biolm.genomic_prediction.cv import gp_cross_validate
from biolm.genomic_prediction.fit import gp_fit, gp_predict

__all__ = ["gp_cross_validate", "gp_fit", "gp_predict"]
