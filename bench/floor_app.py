"""The floor endpoint of ``bench/server.py``: the least any token endpoint must do.

One Flask route, ``POST /floor`` (form ``item=<n>``): one SELECT by primary key,
one INSERT, one commit, one RS256 signature, a JSON answer. It is served the same
way as the authorization server (gunicorn or werkzeug, same worker count, same
database), so ``grant / floor`` says what the server adds on top of the wire,
the database round trips and the signature it cannot avoid.

Environment (set by ``bench/server.py``): ``FLOOR_DATABASE_URL`` (SQLAlchemy URL),
``FLOOR_KEY_FILE`` (a PEM RSA private key). SQLite gets the same pragmas as the
server (WAL, busy timeout). The tables are made by :func:`create_tables`.
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from flask import Flask, abort, jsonify, request
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert, select

metadata = MetaData()
items = Table("floor_items", metadata, Column("id", Integer, primary_key=True), Column("value", String(64)))
log = Table(
    "floor_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_id", Integer, nullable=False),
    Column("jti", String(64), nullable=False),
    Column("created_at", Integer, nullable=False),
)
ITEMS = 1000


def make_engine(url: str) -> Any:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=FULL")  # the app's default (setting sqlite_synchronous)
            cur.close()

        return engine
    return create_engine(url)


def create_tables(url: str) -> None:
    engine = make_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(items), [{"id": i, "value": f"item-{i}"} for i in range(ITEMS)])
    engine.dispose()


def create_app() -> Flask:
    engine = make_engine(os.environ["FLOOR_DATABASE_URL"])
    with open(os.environ["FLOOR_KEY_FILE"], "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), password=None)
    app = Flask(__name__)

    @app.post("/floor")
    def floor() -> Any:
        try:
            item = int(request.form.get("item", "0")) % ITEMS
        except ValueError:
            abort(400)
        jti = secrets.token_urlsafe(24)
        at = int(time.time())
        with engine.begin() as conn:
            value = conn.execute(select(items.c.value).where(items.c.id == item)).scalar_one()
            conn.execute(insert(log).values(item_id=item, jti=jti, created_at=at))
        token = jwt.encode({"sub": value, "jti": jti, "iat": at, "exp": at + 300}, key, algorithm="RS256")
        return jsonify(access_token=token, token_type="Bearer", expires_in=300)

    return app
