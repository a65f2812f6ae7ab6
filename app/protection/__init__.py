"""The UMA protection API (FedAuthz): resource registration, permission endpoint,
token introspection, and the storage of tickets and RPTs the UMA grant uses.

* :mod:`.tickets` — ``issue_ticket``, ``redeem_ticket`` (atomic, single use);
* :mod:`.rpt` — ``issue_rpt``, ``introspect_rpt``, ``refresh_rpt``, ``token_response``;
* :mod:`.auth` — ``pat_required`` / ``current_pat`` for PAT-protected views.

Its blueprints and the introspection endpoint are registered in ``app/factory.py``.
"""
