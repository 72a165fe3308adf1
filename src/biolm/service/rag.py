"""Literature search and cited answers over HTTP, when the service is given a knowledge base (``biolm serve kb=...``).

    POST /v1/rag/search   {"query": "...", "k": 5, "method": "hybrid"} -> the best passages
    POST /v1/rag/ask      {"question": "...", "k": 5, "decision": false} -> the answer, its citations and the passages

The same functions as ``biolm rag search`` and ``biolm rag ask`` (`biolm.text.retrieval.search`,
`biolm.text.rag.ask`). The generator of ``/v1/rag/ask`` is the ``rag_generator`` setting (a YAML file
in the layout of configs/text/generator/; none: passages with their best sentences marked). With a run,
the routes join that run's service; without one (``run=null``), `create_rag_app` serves them alone.
"""

from __future__ import annotations

import threading

from fastapi import FastAPI
from pydantic import BaseModel, Field

from biolm.errors import BiolmError


class SearchRequest(BaseModel):
    query: str = Field(description="What to look for.")
    k: int = Field(5, ge=1, le=100, description="Passages to return.")
    method: str = Field("hybrid", description="bm25, dense or hybrid (reciprocal rank fusion).")


class AskRequest(BaseModel):
    question: str = Field(description="The question.")
    k: int = Field(5, ge=1, le=20, description="Passages given to the generator.")
    method: str = Field("hybrid", description="bm25, dense or hybrid (reciprocal rank fusion).")
    max_new_tokens: int = Field(256, ge=1, le=2048, description="The cap on the answer's length, in tokens.")
    decision: bool = Field(False, description="Parse a yes/no/maybe decision from the answer.")


def _generator_and_prompt(path: str | None):
    """The generator of a YAML file (configs/text/generator/ layout) and the default cited-answer prompt."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from biolm.resources import config_dir
    from biolm.text.generators import build_generator

    prompt = OmegaConf.load(config_dir() / "text" / "rag_prompt" / "cited.yaml")
    if not path:
        return None, prompt
    try:
        cfg = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException) as err:
        raise BiolmError(f"rag_generator: {path}: not a readable YAML file ({str(err).splitlines()[0][:100]})") from None
    return build_generator(cfg), prompt


def add_rag_routes(app: FastAPI, settings, guarded: list) -> None:
    """Load ``settings.kb`` (and ``settings.rag_generator``) and add the two routes to ``app``."""
    from biolm.text.rag import ask
    from biolm.text.retrieval import load_index, search

    kb = load_index(settings.kb)
    generator, prompt = _generator_and_prompt(getattr(settings, "rag_generator", None))
    lock = threading.Lock()  # one embedder / generator call at a time
    app.state.kb = kb

    @app.post("/v1/rag/search", dependencies=guarded, tags=["rag"])
    def rag_search(body: SearchRequest) -> dict:
        """The best passages of the knowledge base for a query."""
        if not body.query.strip():
            raise BiolmError("query: empty; send what to look for")
        with lock:
            return {"kb": str(kb.path), "hits": search(kb, body.query, body.k, body.method)}

    @app.post("/v1/rag/ask", dependencies=guarded, tags=["rag"])
    def rag_ask(body: AskRequest) -> dict:
        """An answer from the retrieved passages, citing them; without a generator, the passages with their best sentences marked."""
        if not body.question.strip():
            raise BiolmError("question: empty; send a question")
        with lock:
            return ask(kb, body.question, generator, prompt, body.k, body.method, body.max_new_tokens, body.decision)


def create_rag_app(settings) -> FastAPI:
    """A service with the knowledge-base routes only (``biolm serve run=null kb=...``)."""
    from fastapi.responses import JSONResponse

    from biolm.service.app import add_middleware, api_key_guard, plain_app
    from biolm.service.schemas import Health

    app = plain_app("biolm literature service", f"Search and cited answers over `{settings.kb}`.")

    @app.get("/readyz", response_model=Health, tags=["health"], responses={503: {"model": Health}})
    async def readyz():
        """Readiness: the index is loaded (503 while starting or shutting down)."""
        return Health(status="ready") if app.state.ready else JSONResponse({"status": "not ready"}, status_code=503)

    add_rag_routes(app, settings, api_key_guard(settings))
    add_middleware(app, settings)
    return app
