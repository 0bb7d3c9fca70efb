"""The dashboard: static files served by the app itself, with Plotly.js from the installed `plotly`
package so the page loads nothing from any other host."""

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# The page runs only our own scripts and styles; fetch() may also reach http(s) origins because
# `?api=` can point the page at a separately hosted API. Plotly injects <style> elements at runtime
# and draws images as data:/blob: URLs, hence those two allowances.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self' http: https:",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.get("/")
def index() -> FileResponse:
    """The single-page dashboard."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html",
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )


def plotly_js_path() -> Path:
    """Plotly.js as shipped inside the pinned `plotly` Python package."""
    return Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))


@router.get("/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    """Plotly.js from the installed `plotly` package: no CDN, versioned with our pins."""
    return FileResponse(
        plotly_js_path(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
    )
