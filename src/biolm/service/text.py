"""The service of an NER run: `create_text_app(run, settings)` -> a FastAPI app.

Routes (JSON in and out; /docs has the OpenAPI schema):

    GET  /                 a page: paste text, see it with highlighted entities and the extracted record
    POST /v1/ner           {"texts": [...], "ids": [...]?} -> entity spans with character offsets per text
    POST /v1/extract       the same body -> one structured record per text (fields of configs/text/record/default.yaml)
    GET  /v1/model         the run: entity types, test metrics, tagger, limits
    GET  /healthz, /readyz

Both routes go through `biolm.text.documents.annotate`, the function behind ``biolm ner predict``
and ``biolm extract``; the forward passes run on a worker thread so the event loop stays free.
Limits: ``max_sequences`` texts per request, ``max_length_bp`` characters per text.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from biolm.errors import BiolmError


class TextRequest(BaseModel):
    """One or many texts."""

    model_config = ConfigDict(extra="forbid")

    texts: list[str] = Field(description="Plain texts (sentences, abstracts).", examples=[[
        "We have recently identified promoter DNA methylation of the genes ADAMTS1 and BNC1 as potential blood biomarkers of pancreas cancer."
    ]])
    ids: list[str] | None = Field(default=None, description="Optional ids, one per text (default text0, text1, ...).")


class Entity(BaseModel):
    start: int = Field(description="Character offset of the first character in the text.")
    end: int = Field(description="Character offset after the last character.")
    label: str
    text: str


class Annotated(BaseModel):
    id: str
    text: str
    entities: list[Entity]


class NerResponse(BaseModel):
    model: str
    types: list[str]
    documents: list[Annotated]


class ExtractResponse(BaseModel):
    model: str
    records: list[dict] = Field(description="Per text: genes, diseases, cancer_types, chemicals, methylation, methylation_trigger, entities.")


def _extract_settings(path: str | None) -> tuple[dict[str, list[str]], dict[str, str]]:
    """The ``fields`` and ``methylation`` maps of ``path`` (default: the packaged configs/text/record/default.yaml)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from biolm.resources import config_dir

    source = Path(path) if path else config_dir() / "text" / "record" / "default.yaml"
    try:
        cfg = OmegaConf.load(source)
        return {str(k): [str(t) for t in v] for k, v in cfg.fields.items()}, {str(k): str(v) for k, v in (cfg.get("methylation") or {}).items()}
    except (OSError, OmegaConfBaseException, AttributeError, TypeError) as err:
        raise BiolmError(f"extract: {source}: expected a YAML file with fields: {{field: [entity types]}} and methylation: "
                         f"{{type: status}} ({str(err).splitlines()[0][:100]})") from None


def create_text_app(run, settings) -> FastAPI:
    """Build the service of an NER run (a loaded `biolm.text.ner.NerRun` or its folder); ``settings`` is a `ServeSettings`."""
    from biolm.service.app import add_middleware, api_key_guard, plain_app
    from biolm.service.schemas import Health
    from biolm.text.documents import annotate
    from biolm.text.extract import build_record
    from biolm.text.ner import NerRun, load_ner_run

    if not isinstance(run, NerRun):
        run = load_ner_run(run)
    fields, methylation = _extract_settings(getattr(settings, "extract", None))
    lock = threading.Lock()  # one forward pass at a time; torch uses the cores within it

    def check(body: TextRequest) -> list[tuple[str, str]]:
        if not body.texts:
            raise BiolmError("texts: the list is empty; send at least one text")
        if len(body.texts) > settings.max_sequences:
            raise BiolmError(f"texts: {len(body.texts)} texts in one request; at most {settings.max_sequences} accepted (max_sequences)")
        if body.ids is not None and len(body.ids) != len(body.texts):
            raise BiolmError(f"ids: {len(body.ids)} ids for {len(body.texts)} texts; send one id per text or none")
        for index, text in enumerate(body.texts):
            if len(text) > settings.max_length_bp:
                raise BiolmError(f"texts[{index}]: {len(text)} characters; at most {settings.max_length_bp} accepted (max_length_bp)")
        return list(zip(body.ids or [f"text{i}" for i in range(len(body.texts))], body.texts, strict=True))

    def tag(documents: list[tuple[str, str]]) -> list[dict]:
        with lock:
            return annotate(run.tagger, documents, settings.max_batch)

    app = plain_app("biolm text service", f"Entities and records of the NER run `{run.path.name}`.")
    guarded = api_key_guard(settings)

    @app.get("/", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(resources.files("biolm.service").joinpath("static/text.html").read_text())

    @app.get("/readyz", response_model=Health, tags=["health"])
    async def readyz() -> Health:
        return Health(status="ready" if app.state.ready else "not ready")

    @app.get("/v1/model", dependencies=guarded, tags=["model"])
    async def card() -> dict:
        """The served run: entity types, test metrics, tagger and request limits."""
        import json

        metrics_file = Path(run.path) / "test_metrics.json"
        return {
            "name": run.path.name, "task": "ner", "types": run.types, "tags": run.tags,
            "metrics": json.loads(metrics_file.read_text()) if metrics_file.exists() else {},
            "model": {"_target_": str(run.cfg.model.tagger._target_)},
            "limits": {"max_texts": settings.max_sequences, "max_chars": settings.max_length_bp},
        }

    @app.post("/v1/ner", response_model=NerResponse, dependencies=guarded, tags=["ner"])
    async def ner(body: TextRequest) -> NerResponse:
        """Entity spans (character offsets) of each text."""
        rows = await run_in_threadpool(tag, check(body))
        return NerResponse(model=run.path.name, types=run.types, documents=[Annotated(**row) for row in rows])

    @app.post("/v1/extract", response_model=ExtractResponse, dependencies=guarded, tags=["ner"])
    async def extract(body: TextRequest) -> ExtractResponse:
        """One structured record per text (genes, diseases, cancer types, chemicals, methylation status)."""
        rows = await run_in_threadpool(tag, check(body))
        records = [{"id": r["id"], **{k: v for k, v in build_record(r["id"], r["entities"], fields, methylation).items() if k != "id"}}
                   for r in rows]
        return ExtractResponse(model=run.path.name, records=records)

    add_middleware(app, settings, cors=False)  # the text service has never answered cross-origin requests
    if settings.kb:
        from biolm.service.rag import add_rag_routes

        add_rag_routes(app, settings, guarded)
    return app
