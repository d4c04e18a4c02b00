"""The gateway: Groupwire's before-hooks in front of Medusa's Admin API.

A reverse proxy (an ASGI app, served by uvicorn: ``groupwire medusa gateway``). Medusa has no
hook on its customer-group workflows; the gateway gives them Groupwire's ``before_*`` hooks:

- the five customer-group and membership writes (``POST /admin/customer-groups``, ``POST`` and
  ``DELETE /admin/customer-groups/{id}``, ``POST /admin/customer-groups/{id}/customers``,
  ``POST /admin/customers/{id}/customer-groups``) are read, put to the hooks with the change
  objects Groupwire's own operation would build (:meth:`Service.run_before_hook`), and then
  forwarded, with the body the hooks left (a veto answers in Medusa's error shape and never
  reaches Medusa);
- everything else is streamed through untouched, both ways.

The old values update, delete and removal hooks see come from Groupwire's copy of Medusa, the
store that ``groupwire medusa capture`` keeps. A row the copy lacks is waited for (capture may
be a moment behind), then Medusa is asked whether it has it: if it has, the copy is behind and
the write is refused (503, nothing forwarded); if it has not, the write is what Medusa makes of
an unknown id (see :meth:`Vetter.vet <groupwire.medusa.gateway.vetting.Vetter.vet>`).
After-hooks and events are not the gateway's: they come from capture, once, whichever path
made the change.

The proxy is lean: one shared ``httpx.AsyncClient`` with keep-alive, no buffering of
requests or responses outside the five writes (and of those only when a hook is there to run).

Its parts, where a reader looks for them:

- :mod:`~groupwire.medusa.gateway.app`: the options and the ASGI app: a request's way through
  the gateway, asking Medusa, forwarding;
- :mod:`~groupwire.medusa.gateway.routes`: the five writes' routes and their before-hooks;
- :mod:`~groupwire.medusa.gateway.vetting`: a write's hook calls, built from its body and the
  copy, and what is forwarded after them;
- :mod:`~groupwire.medusa.gateway.body`: reading a request body (the body limit, draining a
  refused one) and parsing it as Medusa's Express does;
- :mod:`~groupwire.medusa.gateway.headers`: the headers a forwarded request and answer carry;
- :mod:`~groupwire.medusa.gateway.answers`: the gateway's own answers, in Medusa's error shape.
"""

from groupwire.medusa.gateway.app import GatewayOptions, MedusaGateway

__all__ = ["GatewayOptions", "MedusaGateway"]
