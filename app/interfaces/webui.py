"""The desktop UI's static files (``ui/``), served by the local endpoint without the token.

Why without the token: the page has to load before it can ask pywebview (or the operator) for the
token, and the files hold no secret. They still sit behind the endpoint's Host and Origin checks.
What keeps this route from serving anything else: a fixed set of file types, no hidden or ``..``
segments, and the resolved path must stay inside the UI folder (symlinks included). Every answer
carries a strict Content-Security-Policy: scripts and styles from this origin only, no inline code.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                           "form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
               ".ico": "image/x-icon", ".woff2": "font/woff2", ".json": "application/json"}


def ui_dir() -> Path:
    """``CLOUDOPS_UI_DIR``, else the bundle's ``ui/`` (PyInstaller), else the repository's ``ui/``."""
    from agent.bundle import bundled_path

    if env := os.environ.get("CLOUDOPS_UI_DIR"):
        return Path(env).resolve()
    return bundled_path("ui").resolve()


def is_public_path(path: str) -> bool:
    """The paths the guard lets through without a token: the page and well-formed asset paths only."""
    if path == "/":
        return True
    return path.startswith("/ui/") and safe_relative(path[len("/ui/"):]) is not None


def safe_relative(relative: str) -> str | None:
    """``relative`` when it is a plain path to an allowed file type, else None (refused)."""
    if not relative or "\\" in relative or "\x00" in relative or relative.startswith("/"):
        return None
    parts = relative.split("/")
    if any(not p or p.startswith(".") for p in parts):  # '', '.', '..', hidden files
        return None
    if Path(parts[-1]).suffix.lower() not in MEDIA_TYPES:
        return None
    return relative


def resolve_asset(root: Path, relative: str) -> Path | None:
    """The file under ``root`` for ``relative``, or None when it is refused or missing."""
    if safe_relative(relative) is None:
        return None
    candidate = (root / relative).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


def _not_found() -> Response:
    return Response("not found\n", status_code=404, media_type="text/plain", headers=SECURITY_HEADERS)


def static_routes_handlers(root: Path | None = None):
    """The two handlers: ``/`` (index.html) and ``/ui/{path}``."""
    root = (root or ui_dir()).resolve()

    async def index(request: Request) -> Response:
        path = resolve_asset(root, "index.html")
        return _not_found() if path is None else FileResponse(path, media_type=MEDIA_TYPES[".html"],
                                                              headers=SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        path = resolve_asset(root, request.path_params["path"])
        if path is None:
            return _not_found()
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix.lower()], headers=SECURITY_HEADERS)

    return index, asset
