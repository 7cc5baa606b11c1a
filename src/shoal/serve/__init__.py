"""The front door: ``shoal serve`` (HTTP SQL API, Postgres wire protocol) with tokens and roles.

Layout: ``tokens`` (hashed tokens, roles, grants), ``executor`` (guarded, sandboxed, limited query
runs with a query log), ``app`` (FastAPI, /v1), ``wire`` (Postgres wire protocol), ``server``
(one process running both), ``cli`` (the ``serve`` and ``tokens`` commands).
"""
