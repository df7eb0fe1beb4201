"""The FastAPI application: security middleware, error shapes, and the routers.

Routes are thin: they validate a request, call the engine, and shape the
answer like the API family they imitate. Engine calls block, so routes are
plain `def` functions (FastAPI runs them in its thread pool).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.server.security import APIError, RateLimiter, SecurityMiddleware, ServerSettings, error_response

if TYPE_CHECKING:
    from workbench.engine.engine import Engine


def create_app(engine: Engine, settings: ServerSettings | None = None) -> Any:
    from fastapi import Depends, FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from workbench import __version__
    from workbench.engine.errors import WorkbenchError
    from workbench.server.idempotency import IdempotencyMiddleware
    from workbench.server.metrics import MetricsRegistry
    from workbench.server.metrics import router as metrics_router
    from workbench.server.routes import health, native
    from workbench.server.routes.compat import auth, chrysalis, openai, platform, soma, zahara
    from workbench.server.security import family

    settings = settings or ServerSettings()
    app = FastAPI(
        title="Workbench",
        version=__version__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        description="The local Workbench API: OpenAI-compatible and seed-compatible routes over one engine.",
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.state.metrics_registry = MetricsRegistry(engine)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Any:
        return error_response(request, exc)

    @app.exception_handler(WorkbenchError)
    async def _engine_error(request: Request, exc: WorkbenchError) -> Any:
        code = exc.code.upper() if exc.status != 409 else "CONFLICT_ERROR.DUPLICATE_RESOURCE"
        return error_response(request, APIError(exc.status, code, str(exc)))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            field, issue = "body", "is not valid JSON"
        else:
            field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
            issue = str(first.get("msg", "is invalid")).removeprefix("Value error, ")
        return error_response(
            request,
            APIError(
                400, "VALIDATION_ERROR", f"Invalid request: {field}: {issue}.", details={"field": field, "issue": issue}
            ),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:
        codes = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 400: "INVALID_REQUEST"}
        if family(request.url.path) == "chrysalis":
            codes[404] = "ENDPOINT_NOT_FOUND"
        message = {404: f"No route {request.url.path}.", 405: f"{request.method} is not allowed here."}.get(
            exc.status_code, str(exc.detail) if isinstance(exc.detail, str) else "The request is invalid."
        )
        return error_response(
            request,
            APIError(
                exc.status_code, codes.get(exc.status_code, "HTTP_ERROR"), message, headers=dict(exc.headers or {})
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Any:
        import logging

        request_id = getattr(request.state, "request_id", "?")
        if isinstance(exc, WorkbenchError):  # raised in a middleware (e.g. idempotency records on a full disk)
            return error_response(
                request, APIError(exc.status, exc.code.upper(), str(exc), headers={"X-Request-Id": request_id})
            )
        logging.getLogger("workbench.server").exception("request %s failed", request_id)
        # This handler answers outside the security middleware: it adds the request id itself.
        return error_response(
            request,
            APIError(
                500,
                "INTERNAL_ERROR",
                f"The request failed unexpectedly ({type(exc).__name__}).",
                headers={"X-Request-Id": request_id},
            ),
        )

    from workbench.server.security import require

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema(_: Any = Depends(require("read:openapi"))) -> dict[str, Any]:
        """The OpenAPI document of every route (behind a key, like every route but /health)."""
        return app.openapi()

    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(native.router)
    app.include_router(soma.router)
    app.include_router(zahara.router)
    app.include_router(platform.router)
    app.include_router(metrics_router)
    app.include_router(openai.router)
    app.include_router(chrysalis.router)
    app.add_middleware(IdempotencyMiddleware)  # inside SecurityMiddleware (added last, runs first)
    app.add_middleware(SecurityMiddleware, settings=settings)
    return app
