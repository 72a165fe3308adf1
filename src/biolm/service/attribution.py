"""``POST /v1/attribute``: one sequence's prediction and the per-base scores it rests on.

In: ``{"sequence": "ACGT...", "method": "saliency" | "ism", "target": null, "window_bp": 10}``.
Out: the prediction `/v1/predict` gives for that sequence (same path: the micro-batcher), and from
`biolm.interpret.attribute` the explained ``output`` (the target's logit, or the value as predict
reports it), one score per base of the normalised ``sequence`` (``scores[i]`` belongs to
``sequence[i]``; positive pushes the output up) and the ``window_bp`` window of largest summed score.

``saliency`` (gradient x input) costs one backward pass and needs captum: a server without it answers
501 (a setup problem, not the request's), and the model card's ``attribution`` lists only ``ism``.
``ism`` mutates every base to each other letter, 3 L forward passes, so it is refused above the
server's ``ism_max_bp`` bases. The sequence must fit the model whole, and a windowed run's
``data.window_bp``; with the run's ``predict.rc_average`` both strands are attributed and averaged, as
`biolm.interpret.attribute` does. The work runs on the batcher's inference thread, between prediction
batches, so it never runs concurrently with predictions. Mistakes (bad letters, too long, a class the
run does not have) are `BiolmError`, answered 422 with one line.

`example_sequence` picks the model card's ``example`` (the page's "Load example") once at startup,
following the server's ``example`` setting (`biolm.service.app.ServeSettings`).
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from fastapi import FastAPI, HTTPException

from biolm.data.io import SequenceRecords, read_records
from biolm.errors import BiolmError
from biolm.interpret.attributions import attribute
from biolm.prediction import window_setting
from biolm.runs import Run
from biolm.service.inputs import check_sequences
from biolm.service.schemas import AttributeRequest, AttributionResponse, ErrorBody, Prediction, PredictRequest, TopWindow

log = logging.getLogger(__name__)

# The example is read from the run's data files at startup; a larger file is not read for one row.
EXAMPLE_FILE_MAX_BYTES = 64_000_000
# When a DNA run names no readable data file: a TATA-box promoter fragment.
FALLBACK_EXAMPLE = "GGCCTATAAAAGGGCGCTCAGCGCGCCGAGTCCAGCTCGTGCGCAGTCGCGAGCTGCGTCCA"


def attribution_methods() -> list[str]:
    """The methods this server can answer: ``ism`` always, ``saliency`` when captum is installed."""
    return (["saliency"] if importlib.util.find_spec("captum") is not None else []) + ["ism"]


def _fits(run: Run, sequence: str) -> bool:
    """Whether ``sequence`` is at least min_length_bp and fits the model (and its window) whole."""
    tokenizer = run.tokenizer
    if tokenizer.too_short([sequence]):
        return False
    window_bp, _ = window_setting(run.cfg.get("data") or {})
    if window_bp is not None and len(sequence) > window_bp:
        return False
    return run.max_tokens is None or len(tokenizer.encode(sequence)) <= run.max_tokens


def _first_rows(run: Run) -> list[str]:
    """The first row of the run's data.test, data.val and data.train files that are readable."""
    data = run.cfg.get("data") or {}
    rows = []
    for key in ("test", "val", "train"):
        path = data.get(key)
        if not path or not Path(str(path)).is_file() or Path(str(path)).stat().st_size > EXAMPLE_FILE_MAX_BYTES:
            continue
        try:
            records = read_records(str(path), field_name=f"data.{key}", sequence_column=data.get("sequence_column") or "sequence", label_column=None)
        except (BiolmError, OSError) as err:
            log.debug("no example from data.%s: %s", key, err)
            continue
        rows.extend(records.sequences[:1])
    return rows


def example_sequence(run: Run, settings) -> str | None:
    """The model card's example, per ``settings.example`` (see `ServeSettings`): ``auto``, the first row of the
    run's ``data.test`` (else ``data.val``, ``data.train``), else for a DNA run `FALLBACK_EXAMPLE`; ``none``: None;
    otherwise that sequence. Cut to at most ``ism_max_bp`` and ``max_length_bp`` bases and to what the model reads
    whole, so /v1/predict and both /v1/attribute methods accept it. None when nothing fits the run's alphabet.

    Raises:
        BiolmError: ``example`` is a sequence the run's alphabet refuses.
    """
    choice = str(settings.example)
    if choice.lower() == "none":
        return None
    if choice.lower() == "auto":
        candidates = _first_rows(run)
        if run.tokenizer.alphabet.complement is not None:  # the fallback is DNA: never offered to a protein run
            candidates.append(FALLBACK_EXAMPLE)
    else:
        try:
            run.tokenizer.alphabet.normalize([choice], "error")
        except BiolmError as err:
            raise BiolmError(f"example: {err} (accepted: auto, none, or a sequence of the run's alphabet)") from None
        candidates = [choice]
    for raw in candidates:
        try:
            sequence = run.tokenizer.alphabet.normalize([raw], run.tokenizer.invalid)[0][: min(settings.ism_max_bp, settings.max_length_bp)]
        except BiolmError:
            continue
        while len(sequence) > 1 and not _fits(run, sequence):  # too many tokens: drop bases from the end
            sequence = sequence[: max(1, len(sequence) * 9 // 10)]
        if _fits(run, sequence):
            return sequence
    return None


def add_attribution_route(app: FastAPI, run: Run, settings, dependencies: list) -> None:
    """Register ``POST /v1/attribute`` on ``app`` (after ``app.state.batcher`` is set)."""
    batcher = app.state.batcher
    methods = attribution_methods()

    @app.post(
        "/v1/attribute",
        response_model=AttributionResponse,
        dependencies=dependencies,
        tags=["predict"],
        responses={401: {"model": ErrorBody}, 501: {"model": ErrorBody}},
    )
    async def attribute_one(body: AttributeRequest) -> AttributionResponse:
        """Predict one sequence and score each of its bases (saliency: fast; ism: exact, up to ism_max_bp bases)."""
        if body.method not in methods:
            raise HTTPException(
                status_code=501,
                detail=f"method={body.method} needs captum, which this server does not have installed (pip install 'biolm[analysis]'); "
                f"the server answers: {', '.join(methods)}",
            )
        try:
            (sequence,), _ = check_sequences(PredictRequest(sequences=[body.sequence]), run, settings)
        except BiolmError as err:  # the shared check names "sequences[0]"; this body has one "sequence"
            raise BiolmError(str(err).replace("sequences[0]", "sequence", 1)) from None
        if body.method == "ism" and len(sequence) > settings.ism_max_bp:
            raise BiolmError(
                f"sequence: {len(sequence)} bp; method=ism scores 3 mutants per base and accepts at most {settings.ism_max_bp} bp "
                "(ism_max_bp); use method=saliency or a shorter sequence"
            )
        n_tokens, limit = len(run.tokenizer.encode(sequence)), run.max_tokens
        if limit is not None and n_tokens > limit:
            raise BiolmError(
                f"sequence: {len(sequence)} bp is {n_tokens} tokens; the model reads at most {limit} tokens at once "
                "and attributions explain the whole sequence; send a shorter one (window.max_bp in /v1/model)"
            )
        window_bp, _ = window_setting(run.cfg.get("data") or {})
        if window_bp is not None and len(sequence) > window_bp:
            raise BiolmError(
                f"sequence: {len(sequence)} bp; this run predicts windows of {window_bp} bp and attributions explain one window: "
                f"cut the sequence into windows of {window_bp} bp (window.size_bp in /v1/model)"
            )
        if not batcher.running:
            raise HTTPException(status_code=503, detail="the service is starting or shutting down; retry shortly")
        [row] = await batcher.submit([sequence])
        records = SequenceRecords("sequence", [body.id], [sequence], None, [0], "index")

        def work():
            return attribute(run, records, method=body.method, target=body.target, batch_size=settings.max_batch)

        explained = await batcher.run_exclusive(work)
        scores = explained.scores[0]
        start, end = (int(x) for x in explained.top_windows(body.window_bp)[0])
        return AttributionResponse(
            model=run.path.name,
            id=body.id,
            prediction=Prediction(id=body.id, **row),
            method=explained.method,
            baseline=explained.baseline,
            target=explained.target[0],
            output=float(explained.output[0]),
            sequence=explained.sequences[0],
            scores=[float(s) for s in scores],
            top_window=TopWindow(start=start, end=end, score=float(scores[start:end].sum()), sequence=explained.sequences[0][start:end]),
        )
