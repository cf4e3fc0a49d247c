"""The interactive API reference, in development only: Swagger UI at /docs with its script and
styles served from the `swagger-ui-bundle` package (works offline), the OpenAPI document at
/openapi.json. Production serves neither: the reference is for the people building against the
service, not for whoever can reach it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from settings import Environment, Settings

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
OPENAPI_PATH = "/openapi.json"


def openapi_url(settings: Settings) -> str | None:
    return OPENAPI_PATH if settings.environment is Environment.DEVELOPMENT else None


def install_docs(app: FastAPI, settings: Settings) -> None:
    if settings.environment is not Environment.DEVELOPMENT:
        return
    from swagger_ui_bundle import swagger_ui_path

    app.mount(ASSETS_PATH, StaticFiles(directory=swagger_ui_path), name="swagger-ui-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=OPENAPI_PATH,
            title=f"{app.title} — API reference",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
        )
