"""The requesting party's pages (issue 15 point 3): what others share with the signed-in
person, their requests, and asking for a resource they were sent a link to.

=====  ======================================  =============================================
GET    /shared                                  resources they can reach or ask for; their requests
GET    /shared/<resource id>                    one resource from a link: what they can get or ask
POST   /shared/<resource id>/request            ask the owner for scopes (form ``scopes``)
=====  ======================================  =============================================
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, request, url_for

from .. import owner_service as service
from ..db import get_session
from ..errors import InvalidRequest
from . import bp, login_required
from .common import owner, render_page


@bp.get("/shared")
@login_required
def shared_with_me() -> Any:
    """Resources of others the signed-in person can reach (scopes, owner, until when), those
    they may ask for, and their requests with the owners' answers."""
    user = owner()
    return render_page("web/shared.html", user=user, **service.shared_with_me(get_session(), user))


@bp.get("/shared/<resource_id>")
@login_required
def shared_resource(resource_id: str) -> Any:
    """A resource the person was sent a link to: what they would get, what they may ask for."""
    user = owner()
    row, get, ask = service.reachable_resource(get_session(), user, resource_id)
    return render_page("web/shared_resource.html", user=user, resource=row, get=get, ask=ask)


@bp.post("/shared/<resource_id>/request")
@login_required
def request_access(resource_id: str) -> Any:
    """Ask the owner for the chosen scopes (those the owner's ``ask`` rules let the person ask for)."""
    db = get_session()
    user = owner()
    row, _get, ask = service.reachable_resource(db, user, resource_id)
    try:
        service.request_access(db, user, row, request.form.getlist("scopes"), ask)
    except (InvalidRequest, service.Conflict) as exc:
        flash(exc.description, "error")
        return redirect(url_for("web.shared_resource", resource_id=row.id), code=303)
    flash(f"Asked {row.owner} for {', '.join(request.form.getlist('scopes'))}; the answer shows here.")
    return redirect(url_for("web.shared_with_me"), code=303)
