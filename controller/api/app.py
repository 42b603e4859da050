"""The FastAPI application: routers, the one error shape, and the dashboard's static files.

Errors are always ``{"message": "..."}`` (plus ``code`` for a charger's CALLERROR); a 422 message starts with
the field it is about (``body.limit_kw: ...``, ``query.limit: ...``) and ``errors`` lists every problem.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from controller.api import ops, read_routes, write_routes
from controller.api.context import ApiContext

STATIC = Path(__file__).parent / "static"


def _field_message(err: dict[str, Any]) -> str:
    where = ".".join(str(p) for p in err.get("loc", ())) or "request"
    return f"{where}: {err.get('msg', 'invalid')}"


def create_app(ctx: ApiContext) -> FastAPI:
    from evsite import __version__

    app = FastAPI(
        title="evsite operator API",
        version=__version__,
        description="Site state, chargers, transactions and commands of a running `evsite serve`. "
        "Send `Authorization: Bearer <token>`; tokens and roles are in `[[api.tokens]]` of config.toml.",
    )
    app.state.ctx = ctx
    ctx.extra.setdefault("metrics", ops.ApiMetrics(ctx))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        return JSONResponse({"message": "; ".join(_field_message(e) for e in errors), "errors": errors}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail)}
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    app.include_router(read_routes.router)
    app.include_router(write_routes.router)
    app.include_router(ops.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    return app
