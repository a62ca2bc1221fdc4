"""The HTTP edge's ASGI application: V2 REST, the drawing endpoint, the static page, CORS."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from service.http.draw import DrawEndpoint
from service.http.v2 import V2Rest
from service.serving.core import ServingCore
from service.settings import ServiceSettings

__all__ = ["STATIC", "build_app"]

STATIC = Path(__file__).with_name("static")


def build_app(settings: ServiceSettings, core: ServingCore, v2: V2Rest) -> Starlette:
    """Starlette app over `core`: V2 REST (`v2`), POST /v1/draw, and the page at /.

    CORS is off unless settings.cors_origins lists origins (then those may call GET and POST,
    and read Inference-Header-Content-Length).
    """
    draw = DrawEndpoint(core, max_body_bytes=settings.max_message_bytes)
    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST"],
                allow_headers=["*"],
                expose_headers=["Inference-Header-Content-Length"],
            )
        )
    routes = [*v2.routes(), *draw.routes(), Mount("/", StaticFiles(directory=STATIC, html=True))]
    return Starlette(routes=routes, middleware=middleware)
