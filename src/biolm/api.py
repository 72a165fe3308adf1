"""The public Python API: one import for every command's function.

A facade: each function lives in its own module (training in `biolm.training` with the
`biolm.finetuning` and `biolm.pretraining` recipes, prediction in `biolm.prediction`, evaluation in
`biolm.evaluation`, variants and genomic prediction in their packages); nothing inside biolm
imports this module. The CLI and the service are thin layers over these functions; there is one
prediction path (`predict_records`) behind `predict`, `evaluate` and the test metrics written at
the end of `finetune`, so the three can never disagree.
"""

from __future__ import annotations

from biolm.benchmark import SuiteResults, plan_suite, run_suite
from biolm.catalog import model_catalog
from biolm.embeddings import EmbeddingModel, check_color_by, embed, input_columns, load_pretrained_trunk, load_run_trunk, plot_embeddings
from biolm.evaluation import compare_runs, compute_metrics, evaluate
from biolm.export import export_run
from biolm.finetuning import finetune, merge_adapter
from biolm.genomic_prediction import gp_cross_validate, gp_fit, gp_predict
from biolm.interpret.attributions import attribute
from biolm.interpret.motifs import Motifs, find_motifs, match_known, motif_table, write_motifs
from biolm.interpret.outputs import Attributions, load_attributions, write_attributions
from biolm.models.causal_lm import prepare_tokenizer
from biolm.prediction import predict, predict_records
from biolm.pretraining import pretrain, train_tokenizer
from biolm.resources import register_resolvers
from biolm.runs import Run, load_pretrained_language_model, load_run
from biolm.sweep import SweepResult, run_sweep
from biolm.text.agent import run_agent
from biolm.text.answers import RecordSchema, parse_answer, schema_for
from biolm.text.corpus import read_corpus
from biolm.text.documents import annotate, read_documents
from biolm.text.extract import extract_records, extract_sentences, gold_records, score_extraction
from biolm.text.instructions import corpus_examples, few_shot_turns, instruction_rows, read_instructions, record_examples
from biolm.text.llm import (
    LlmRun,
    corpus_maps,
    evaluate_llm,
    full_schema,
    load_llm,
    load_llm_run,
    pretrained_path,
    prompt_style,
    record_maps,
    require_schema,
    sample_sentences,
    score_taggers,
)
from biolm.text.llm import ask as ask_llm
from biolm.text.llm import extract_documents as llm_extract
from biolm.text.ner import NerRun, evaluate_ner, load_ner_run, read_corpora, require_labels
from biolm.text.rag import ask as rag_ask
from biolm.text.rag import evaluate_answers, evaluate_retrieval
from biolm.text.retrieval import build_index, load_index, search
from biolm.training import fit
from biolm.variants import check_sex, filter_vcf, in_silico_mutagenesis, sample_qc, score_variants, variant_dataset, variant_window_dataset

register_resolvers()  # configs composed or loaded by API users may name ${bundled:...} files

__all__ = [
    "Attributions",
    "attribute",
    "load_attributions",
    "write_attributions",
    "Motifs",
    "find_motifs",
    "match_known",
    "motif_table",
    "write_motifs",
    "LlmRun",
    "build_index",
    "evaluate_answers",
    "evaluate_retrieval",
    "load_index",
    "rag_ask",
    "run_agent",
    "search",
    "NerRun",
    "RecordSchema",
    "ask_llm",
    "corpus_examples",
    "corpus_maps",
    "evaluate_llm",
    "few_shot_turns",
    "full_schema",
    "instruction_rows",
    "llm_extract",
    "load_llm",
    "load_llm_run",
    "parse_answer",
    "prepare_tokenizer",
    "pretrained_path",
    "prompt_style",
    "read_instructions",
    "record_examples",
    "record_maps",
    "require_labels",
    "require_schema",
    "sample_sentences",
    "schema_for",
    "score_taggers",
    "Run",
    "annotate",
    "evaluate_ner",
    "extract_records",
    "extract_sentences",
    "gold_records",
    "load_ner_run",
    "read_corpora",
    "read_corpus",
    "read_documents",
    "score_extraction",
    "compare_runs",
    "run_suite",
    "plan_suite",
    "SuiteResults",
    "compute_metrics",
    "EmbeddingModel",
    "check_color_by",
    "embed",
    "input_columns",
    "load_pretrained_trunk",
    "load_run_trunk",
    "plot_embeddings",
    "evaluate",
    "export_run",
    "check_sex",
    "filter_vcf",
    "finetune",
    "fit",
    "run_sweep",
    "SweepResult",
    "gp_cross_validate",
    "gp_fit",
    "gp_predict",
    "in_silico_mutagenesis",
    "load_pretrained_language_model",
    "load_run",
    "merge_adapter",
    "model_catalog",
    "predict",
    "predict_records",
    "pretrain",
    "sample_qc",
    "score_variants",
    "train_tokenizer",
    "variant_dataset",
    "variant_window_dataset",
]
