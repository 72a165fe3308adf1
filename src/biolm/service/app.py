"""The prediction service: `create_app(run, settings)` -> a FastAPI app serving one trained run.

Routes (JSON in and out; see /docs for the OpenAPI schema):

    GET  /                   a small self-contained page (paste or upload FASTA, table, CSV download)
    POST /v1/predict         {"sequences": [...], "ids": [...]?} -> one prediction per sequence
    POST /v1/attribute       {"sequence": ..., "method": "saliency"|"ism"} -> its prediction and per-base scores
                             (501 for saliency when captum is not installed; the model card lists what is served)
    POST /v1/variants/score  variant effect scores (when biolm.variants is installed and reference= is set)
    GET  /v1/model           model card: task, labels, test metrics, tokenizer, input window, limits
    GET  /healthz, /readyz   liveness; readiness (503 while starting or shutting down)

An NER run (``biolm ner train``) is served by `biolm.service.text.create_text_app` instead:
``/v1/ner`` and ``/v1/extract`` with a page that highlights the entities. A knowledge base (``kb=``) adds
``/v1/rag/search`` and ``/v1/rag/ask`` to either (`biolm.service.rag`), or is served alone without a run.

Predictions go through `biolm.prediction.predict`, the function behind ``biolm predict``, via the
`MicroBatcher`, which runs concurrent requests as shared forward passes on a worker thread.
User mistakes are 4xx JSON ``{"detail": "<one line>"}``: 422 for a bad body (naming the sequence
index and character, or the sequences shorter than the tokenizer's ``min_length_bp``), 413 for a
body over ``max_body_bytes``, 401 for a missing or wrong API key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import APIKeyHeader

from biolm.errors import BiolmError
from biolm.prediction import predict, window_setting
from biolm.runs import Run, count_parameters, load_run
from biolm.service.attribution import add_attribution_route, attribution_methods, example_sequence
from biolm.service.batching import MicroBatcher
from biolm.service.inputs import check_sequences
from biolm.service.middleware import AccessLogMiddleware, BodyLimitMiddleware
from biolm.service.schemas import (
    ErrorBody,
    Health,
    ModelCard,
    Prediction,
    PredictRequest,
    PredictResponse,
)

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"


@dataclass
class ServeSettings:
    """Server settings; the defaults are those of ``configs/serve.yaml`` (a test keeps them equal).

    Attributes:
        host: interface to bind (loopback unless told otherwise).
        port: TCP port.
        api_key: when set, /v1/* requires it in the ``X-API-Key`` header.
        batching: gather concurrent requests into shared forward passes.
        max_batch: most sequences per shared forward pass.
        max_wait_ms: longest a request waits for others to share its forward pass.
        max_sequences: most sequences in one request.
        max_length_bp: longest sequence accepted (bases, after stripping whitespace).
        max_body_bytes: largest request body.
        cors_origins: origins allowed by CORS (empty: CORS off).
        reference: reference FASTA for /v1/variants/score (None: no variant route).
        variants_window_bp: default window of variant scoring.
        graceful_timeout_s: on shutdown, how long in-flight requests may take to finish.
        torch_threads: intra-op threads of the forward pass (None: torch's default, one per core).
        extract: NER runs: a YAML file with the ``fields:`` and ``methylation:`` maps of ``/v1/extract``
            (None: those of ``configs/text/record/default.yaml``, as ``biolm extract`` uses by default).
        kb: a knowledge-base folder (``biolm rag index``): adds ``/v1/rag/search`` and ``/v1/rag/ask`` (`biolm.service.rag`).
        rag_generator: a YAML file in the layout of configs/text/generator/ for ``/v1/rag/ask`` (None: passages only).
        example: the model card's ``example`` (the page's Load example): ``auto``, the first row of the run's
            ``data.test`` file (else ``data.val``, ``data.train``; for a DNA run without a readable file, a
            TATA-box fragment), so it shows one row of the run's data to anyone who may read /v1/model;
            ``none``, no example; or a sequence. It is cut to what /v1/attribute accepts.
        ism_max_bp: longest sequence ``/v1/attribute`` mutates with ``method=ism`` (3 forward passes per base).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    batching: bool = True
    max_batch: int = 64
    max_wait_ms: float = 10.0
    max_sequences: int = 1024
    max_length_bp: int = 100_000
    max_body_bytes: int = 8_000_000
    cors_origins: list[str] = field(default_factory=list)
    reference: str | None = None
    variants_window_bp: int = 512
    graceful_timeout_s: float = 30.0
    torch_threads: int | None = None
    extract: str | None = None
    kb: str | None = None
    rag_generator: str | None = None
    example: str = "auto"
    ism_max_bp: int = 512

    @classmethod
    def from_config(cls, cfg) -> ServeSettings:
        """Settings from the composed ``serve`` config (unknown keys are ignored)."""
        known = {name: cfg[name] for name in cls.__dataclass_fields__ if name in cfg and cfg[name] is not None}
        if "cors_origins" in known:
            known["cors_origins"] = [str(origin) for origin in known["cors_origins"]]
        for name in ("reference", "extract", "kb", "rag_generator", "example"):
            if name in known:
                known[name] = str(known[name])
        if "api_key" in known:
            known["api_key"] = str(known["api_key"]) or None  # Hydra reads api_key=1234 as an int
        return cls(**known)


def predict_rows(run: Run, sequences: list[str], batch_size: int) -> list[dict]:
    """`biolm.prediction.predict` as one `Prediction` body (without ``id``) per sequence: ``prediction``,
    ``probabilities`` (None for values) and ``call`` (the risk band, None without bands).

    Runs on the inference thread: the table is converted there once per forward pass, not once
    per request on the event loop.
    """
    frame = predict(run, sequences, batch_size=batch_size)
    predictions = frame["prediction"].tolist()
    calls = frame["call"].tolist() if "call" in frame else [None] * len(frame)
    probabilities = run.objective.probabilities(frame)
    if probabilities is None:  # the objective predicts values
        return [{"prediction": float(value), "probabilities": None, "call": call} for value, call in zip(predictions, calls)]
    return [{"prediction": str(value), "probabilities": row, "call": call} for value, row, call in zip(predictions, probabilities, calls)]


def model_card(run: Run, settings: ServeSettings, variants: bool, example: str | None = None, attribution: list[str] | None = None) -> ModelCard:
    """The model card of a loaded run (``example``: the sequence the page's Load example fills in; ``attribution``:
    the methods /v1/attribute serves)."""
    metrics_path = run.path / "test_metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    # an undefined metric is null; older runs wrote NaN, which a JSON answer cannot carry
    metrics = {key: None if isinstance(value, float) and not math.isfinite(value) else value for key, value in metrics.items()}
    max_tokens = run.max_tokens
    per_token = float(run.tokenizer.bases_per_token)
    window_bp, stride_bp = window_setting(run.cfg.data)
    settings_of_predict = run.cfg.get("predict") or {}
    window = {
        "max_tokens": max_tokens,
        "bases_per_token": per_token,
        "max_bp": int(max_tokens * per_token) if max_tokens else None,
        "min_length_bp": int(run.tokenizer.min_length_bp),
        # long inputs: cut into windows of size_bp (every stride_bp), scores aggregated per sequence
        "size_bp": window_bp,
        "stride_bp": stride_bp,
        "aggregate": settings_of_predict.get("aggregate") or "mean",
        "rc_average": bool(settings_of_predict.get("rc_average") or False),
    }
    _, total = count_parameters(run.model)
    trunk = run.cfg.model.get("trunk", {})
    model = {"trunk": trunk.get("_target_") if hasattr(trunk, "get") else None, "parameters": total}
    limits = {name: value for name, value in asdict(settings).items() if name.startswith("max_") or name in ("batching", "variants_window_bp", "ism_max_bp")}
    return ModelCard(
        name=run.path.name,
        task=run.labels.task,
        labels=list(run.labels.classes),
        metrics=metrics,
        tokenizer={"kind": run.tokenizer.kind, **run.tokenizer.config()},
        window=window,
        model=model,
        limits=limits,
        variants=variants,
        decision=run.objective.decision.to_dict() if run.objective.decides else None,
        example=example,
        attribution=list(attribution or []),
    )


def _location(loc: tuple) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BiolmError)
    async def user_error(request: Request, err: BiolmError) -> JSONResponse:
        return JSONResponse({"detail": " ".join(str(err).split())}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, err: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in err.errors()]
        first = err.errors()[0] if err.errors() else {}
        detail = f"{_location(tuple(first.get('loc', ())))}: {first.get('msg', 'invalid request body')}"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)


def _variants_available(settings: ServeSettings) -> bool:
    """Whether to serve variant scores: a reference is configured and the variant scorer is installed."""
    if not settings.reference:
        return False
    try:
        from biolm.variants import score_variants
    except ImportError:
        return False
    return callable(score_variants)


def _add_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the files of the swagger-ui-bundle package, not a CDN (clusters
    often have no internet); without that package, FastAPI's CDN-based page."""
    from fastapi.openapi.docs import get_swagger_ui_html

    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        assets = None
    else:
        from fastapi.staticfiles import StaticFiles

        app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")
        assets = "/docs-assets"

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if assets is None:
            return get_swagger_ui_html(openapi_url=app.openapi_url, title=app.title)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=app.title,
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )


def plain_app(title: str, description: str) -> FastAPI:
    """A FastAPI app for the text and literature services: ``app.state.ready`` set by its lifespan, offline
    ``/docs``, one-line error bodies and ``/healthz`` (the DNA service has its own, with the micro-batcher)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.ready = True
        yield
        app.state.ready = False

    app = FastAPI(title=title, version="1", description=description, lifespan=lifespan,
                  responses={422: {"model": ErrorBody}, 413: {"model": ErrorBody}}, docs_url=None, redoc_url=None)
    _add_offline_docs(app)
    _install_error_handlers(app)
    app.state.ready = False

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    return app


def add_middleware(app: FastAPI, settings: ServeSettings, cors: bool = True) -> None:
    """CORS (when ``settings.cors_origins`` is set and ``cors``), the body-size limit and the access log."""
    if cors and settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"], allow_headers=[API_KEY_HEADER, "Content-Type"])
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)


def api_key_guard(settings: ServeSettings) -> list:
    """Route dependencies that answer 401 unless the ``X-API-Key`` header holds ``settings.api_key`` (none when unset)."""
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="Required when the server was started with api_key=...")

    async def require_key(key: str | None = Depends(key_header)) -> None:
        if settings.api_key and not (key and secrets.compare_digest(key.encode(), settings.api_key.encode())):
            raise HTTPException(status_code=401, detail=f"missing or wrong API key; send it in the {API_KEY_HEADER} header")

    return [Depends(require_key)]


def create_app(run: Run | str | Path | None, settings: ServeSettings | None = None) -> FastAPI:
    """Build the service for one trained run.

    Args:
        run: a loaded `Run` or a run folder (weights are read from ``model.safetensors`` only); None with
            ``settings.kb``: the literature routes alone.
        settings: server settings (default: those of ``configs/serve.yaml``).

    Returns:
        The FastAPI app; serve it with uvicorn (``biolm serve``) or test it with ``TestClient``.

    Raises:
        BiolmError: the run folder is missing or incomplete.
    """
    settings = settings or ServeSettings()
    from biolm.text.ner import NerRun

    if run is None:
        if not settings.kb:
            raise BiolmError("run: missing; pass run=runs/<name>, or kb=<knowledge base> to serve literature search alone")
        from biolm.service.rag import create_rag_app

        return create_rag_app(settings)

    if isinstance(run, NerRun) or not isinstance(run, Run) and (Path(run) / "tags.json").exists():  # a text (NER) run
        from biolm.service.text import create_text_app

        return create_text_app(run, settings)
    if not isinstance(run, Run):
        run = load_run(run)
    if not run.objective.serves:
        raise BiolmError(
            f"run: {run.path} is a {run.objective.name} run; the service answers one prediction per sequence, "
            "which this objective does not make; use biolm predict"
        )
    batcher = MicroBatcher(
        lambda sequences: predict_rows(run, sequences, settings.max_batch),
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        enabled=settings.batching,
    )
    variants = _variants_available(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        app.state.ready = True
        log.info("serving %s (%s, %d labels); batching %s", run.path, run.labels.task, len(run.labels.classes), "on" if settings.batching else "off")
        try:
            yield
        finally:
            app.state.ready = False
            await batcher.stop()
            if batcher.calls:
                log.info("served %d sequences in %d forward passes (%.1f per pass)", batcher.sequences, batcher.calls, batcher.sequences / batcher.calls)

    app = FastAPI(
        title="biolm prediction service",
        version="1",
        description=f"Predictions of the trained run `{run.path.name}` ({run.labels.task}).",
        lifespan=lifespan,
        responses={422: {"model": ErrorBody}, 413: {"model": ErrorBody}},
        docs_url=None,
        redoc_url=None,
    )
    _add_offline_docs(app)
    app.state.ready = False
    app.state.run = run
    app.state.batcher = batcher
    app.state.settings = settings
    _install_error_handlers(app)

    guarded = api_key_guard(settings)
    example = example_sequence(run, settings)  # once: it may read the run's test file
    methods = attribution_methods()

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("biolm.service").joinpath("static/index.html").read_text())

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    async def readyz():
        """Readiness: the model is loaded and the batcher runs (503 while starting or shutting down)."""
        if app.state.ready and batcher.running:
            return Health(status="ready")
        return JSONResponse({"status": "not ready"}, status_code=503)

    @app.get("/v1/model", response_model=ModelCard, dependencies=guarded, tags=["model"])
    async def card() -> ModelCard:
        """The served run: task, labels, test metrics, tokenizer, input window and request limits."""
        return model_card(run, settings, variants, example, methods)

    @app.post("/v1/predict", response_model=PredictResponse, dependencies=guarded, tags=["predict"], responses={401: {"model": ErrorBody}})
    async def predict(body: PredictRequest) -> PredictResponse:
        """Predict one or many sequences (batched with concurrent requests)."""
        sequences, ids = check_sequences(body, run, settings)
        if not batcher.running:
            raise HTTPException(status_code=503, detail="the service is starting or shutting down; retry shortly")
        rows = await batcher.submit(sequences)
        predictions = [Prediction(id=seq_id, **row) for seq_id, row in zip(ids, rows)]
        return PredictResponse(model=run.path.name, task=run.labels.task, labels=list(run.labels.classes), predictions=predictions)

    add_attribution_route(app, run, settings, guarded)
    if variants:
        from biolm.service.variants import add_variant_route

        add_variant_route(app, run, settings, guarded)
    if settings.kb:
        from biolm.service.rag import add_rag_routes

        add_rag_routes(app, settings, guarded)

    add_middleware(app, settings)
    return app
