"""Owner pages of notifications (issue 15 point 4): where to be told of pending requests, how
each notification went, and the one request a notification links to.

=====  ======================================  =============================================
GET    /my/notifications                        targets, the latest deliveries and their status
POST   /my/notifications/webhook                register a webhook (``url``): its secret shown once
POST   /my/notifications/email                  register an email address (``address``)
POST   /my/notifications/<id>/remove            remove a target (and its deliveries)
GET    /my/requests/<id>                        one request: approve or deny it (the link sent)
=====  ======================================  =============================================

The link of a notification leads to ``/my/requests/<id>``; signed out, the login page comes
first and returns there (``next``: a path of this server only, :func:`app.web.safe_next`).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, request, url_for

from .. import get_settings, notifications
from .. import owner_service as service
from ..db import get_session
from ..errors import InvalidRequest
from ..security import now
from . import bp, login_required
from .common import owner, render_page


def _page(status: int = 200, new_secret: str | None = None, new_target: Any = None) -> Any:
    db = get_session()
    user = owner()
    settings = get_settings()
    rows = notifications.deliveries(db, user.username)
    owned = notifications.targets(db, user.username)
    return render_page(
        "web/notifications.html",
        status,
        user=user,
        targets=owned,
        by_id={t.id: t for t in owned},
        deliveries=rows,
        email_on=bool(settings.smtp_host),
        allow_http=settings.notification_allow_http_loopback,
        new_secret=new_secret,
        new_target=new_target,
        now=now(),
    )


@bp.get("/my/notifications")
@login_required
def notification_settings() -> Any:
    """Where the owner is told of pending requests, and how the latest notifications went."""
    return _page()


@bp.post("/my/notifications/webhook")
@login_required
def add_webhook() -> Any:
    """Register a webhook; the answer shows its signing secret, this once."""
    try:
        target, secret = notifications.add_webhook(
            get_session(),
            owner().username,
            request.form.get("url", ""),
            get_settings(),
            current_app.config["SECRET_KEY"],
        )
    except InvalidRequest as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.notification_settings"), code=303)
    return _page(new_secret=secret, new_target=target)


@bp.post("/my/notifications/email")
@login_required
def add_email() -> Any:
    try:
        row = notifications.add_email(get_session(), owner().username, request.form.get("address", ""), get_settings())
    except InvalidRequest as exc:
        flash(exc.description, "error")
    else:
        flash(f"Pending requests are now also sent to {row.address}.")
    return redirect(url_for("web.notification_settings"), code=303)


@bp.post("/my/notifications/<int:target_id>/remove")
@login_required
def remove_target(target_id: int) -> Any:
    row = notifications.remove_target(get_session(), owner().username, target_id)
    flash(f"Removed {row.address}: nothing more is sent there.")
    return redirect(url_for("web.notification_settings"), code=303)


@bp.get("/my/requests/<int:request_id>")
@login_required
def request_page(request_id: int) -> Any:
    """One request of the owner, to approve or deny (where a notification's link leads)."""
    db = get_session()
    user = owner()
    row = service.find_request(db, user.username, request_id)
    return render_page(
        "web/request.html",
        user=user,
        r=row,
        why=service.asked_by(db, [row]) if row.status == "pending" else {},
        resources=service.resources_by_id(db, user.username, [row.resource_id]),
        names=service.client_names(db, [row.client_id]),
    )
