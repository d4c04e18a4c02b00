"""``/admin/api-keys``: key management (admin scope, enforced by the middleware)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from groupwire.api.bodies import CreateApiKey
from groupwire.api.caller import GW, current_key
from groupwire.api.idempotency import OUTSIDE_SERVICE
from groupwire.api.render import api_key_json
from groupwire.auth import keys

router = APIRouter(prefix="/admin/api-keys", tags=["api keys"], dependencies=[OUTSIDE_SERVICE])
log = logging.getLogger("groupwire.api")


@router.post("", summary="Create an API key; the secret is returned once, here")
def create_api_key(gw: GW, body: CreateApiKey, request: Request) -> JSONResponse:
    key, secret = keys.create_key(gw.engine, body.name, body.scopes)
    log.info("API key %s created by %s", key.id, current_key(request).id)
    return JSONResponse({"api_key": api_key_json(key), "secret": secret})


@router.get("", summary="List API keys (never their secrets)")
def list_api_keys(gw: GW) -> JSONResponse:
    found = keys.list_keys(gw.engine)
    return JSONResponse({"api_keys": [api_key_json(k) for k in found], "count": len(found)})


@router.post("/{id}/revoke", summary="Revoke an API key at once")
def revoke_api_key(gw: GW, id: str, request: Request) -> JSONResponse:
    key = keys.revoke_key(gw.engine, id)
    log.info("API key %s revoked by %s", key.id, current_key(request).id)
    return JSONResponse({"api_key": api_key_json(key)})
