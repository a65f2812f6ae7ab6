"""gunicorn settings for this server (issue 11, point 1; docs/operations.md, "Running")::

    gunicorn -c python:app.gunicorn_conf -w 4 -b 127.0.0.1:8000 'app:create_app()'

* ``preload_app``: the master builds the app, and so compiles the policy set, once, before
  it forks the workers; the workers share that memory copy-on-write instead of each
  compiling its own (N workers used to compile N times and hold N copies).
* ``when_ready`` (in the master, after the app is built, before the first fork):
  :func:`gc.freeze` (:func:`app.policies.freeze_after_start`) moves every object made so
  far out of the garbage collector's reach, so that the workers' collections do not write
  to (and so copy) the pages of the shared policy set.
* ``post_worker_init`` (in each worker, before it serves): the worker takes in what
  changed since the master compiled (a worker started later, after a crash or with
  ``max_requests``, may be forked from an older set) and starts its background thread
  (:meth:`app.policies.PolicyStore.start`). Its database pool is its own already
  (:func:`app.db.init_app`).

Other gunicorn settings come from the command line as usual; a configuration file of your
own can take these with ``from app.gunicorn_conf import *``.
"""

from __future__ import annotations

from typing import Any

from app.policies import freeze_after_start

preload_app = True


def when_ready(server: Any) -> None:
    freeze_after_start()


def post_worker_init(worker: Any) -> None:
    extensions = getattr(worker.wsgi, "extensions", None)  # None: the app wrapped in a middleware
    store = extensions.get("uma_policies") if extensions is not None else None
    if store is not None:
        store.start(catch_up=True)  # else the worker's first request starts it


__all__ = ["preload_app", "when_ready", "post_worker_init"]
