"""Everything of the product that talks to Temporal, one module per concern.

`connection` (the client, and how a call fails), `converter` (payloads: pydantic,
encrypted), `requests` (submit, decide, hold, resume, status), `personal_data` (erasure
and the key sweep), `partner_users` (invitations, links, removals), `dual_write` (the
two sync workflows) and `deployment` (Worker Versioning: this build's version, the
deploy). `starter.py`, the web app and the worker call them; nothing else talks to
Temporal. A caller imports a name from the module that owns it.
"""
