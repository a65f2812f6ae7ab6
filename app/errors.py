"""Typed API errors, turned into JSON responses at one boundary (:func:`register_error_handlers`).

Raise an :class:`ApiError` subclass anywhere in a JSON endpoint; the handler
answers ``{"error": ..., "error_description": ...}`` with ``Cache-Control:
no-store`` (F-43). Unexpected exceptions are logged and answered as a JSON 500
without details (they are bugs: every client input has a typed answer).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class ApiError(Exception):
    """An error answered as JSON with a fixed status and error code."""

    status: int = 400
    error: str = "invalid_request"

    def __init__(self, description: str = "", *, headers: dict[str, str] | Headers | None = None, **extra: Any):
        super().__init__(description or self.error)
        self.description = description
        self.headers = headers or {}  # a werkzeug Headers when one name repeats (several challenges)
        self.extra = extra

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"error": self.error}
        if self.description:
            data["error_description"] = self.description
        data.update(self.extra)
        return data


class InvalidRequest(ApiError):
    """Malformed request: missing/invalid/repeated parameter (F-29, F-36 DERIVED, A7)."""


class NotFound(ApiError):
    """Unknown resource id, or one the caller may not see (F-27)."""

    status = 404
    error = "not_found"


class InvalidResourceId(ApiError):
    """Permission request names a resource the AS does not know for this RS/owner (F-36, F-34)."""

    error = "invalid_resource_id"


class InvalidScope(ApiError):
    """Permission request names a scope not registered for the resource (F-36)."""

    error = "invalid_scope"


def json_error(status: int, error: str, description: str = "", headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    response = jsonify(body)
    response.status_code = status
    response.headers.update(NO_STORE)
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


_HTTP_ERRORS = {
    400: "invalid_request",
    404: "not_found",
    405: "unsupported_method_type",
    413: "invalid_request",
}


def _wants_html() -> bool:
    """Whether the client prefers a page to JSON (browsers say so in ``Accept``; API clients do not)."""
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == "text/html"


def _error_page(status: int, error: str, description: str | None) -> Response:
    return Response(render_template("error.html", error=error, description=description), status, mimetype="text/html")


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        if _wants_html():  # a person's browser, e.g. a page's form with a body the reader refused
            response = _error_page(exc.status, exc.error, exc.description)
        else:
            response = jsonify(exc.body())
            response.status_code = exc.status
        response.headers.update(NO_STORE)
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.response is not None:
            return exc.response
        if isinstance(exc, CSRFError):  # Flask-WTF's reasons are for developers; say what to do
            exc.description = (
                f"The form expired or did not come from this site; reload the page and try again. ({exc.description})"
            )
        status = exc.code or 500
        if _wants_html():
            return _error_page(status, exc.name, exc.description)
        response = json_error(status, _HTTP_ERRORS.get(status, "invalid_request"), exc.description or exc.name)
        if status == 405 and getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "server_error", "internal error")
