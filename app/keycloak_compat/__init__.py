"""Keycloak's layout beside the standard surface (issue 16), when ``keycloak_compat`` is set.

Keycloak's UMA clients (``python-keycloak``'s ``KeycloakUMA``/``KeycloakOpenID``, its Java and
JavaScript adapters) build every URL under ``/realms/{realm}/`` and expect Keycloak's status
codes and extensions to the UMA grant. This package serves them as thin adapters over the same
services as the standard surface: one resource registration, one permission endpoint, one grant,
one policy engine (docs/keycloak-migration.md says what maps one to one and what differs).

* :mod:`.views` — the realm's discovery, token, introspection, certs, ``resource_set`` and
  ``permission`` endpoints;
* :mod:`.grant` — Keycloak's extensions to the UMA grant, at the realm's token endpoint only;
* :mod:`.resources` — Keycloak's resource representation and list filters;
* :mod:`.uma_policy` — the ``uma-policy`` endpoint: a policy is a rule of the owner's text.

Registered by name in :func:`app.factory.create_app` only when enabled: otherwise none of these URLs
exists (404) and the standard surface is exactly as without this package.
"""

from __future__ import annotations
