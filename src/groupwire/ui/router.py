"""``router``: every page of the admin web page, for ``app.include_router`` (prefix ``/app``)."""

from __future__ import annotations

from fastapi import APIRouter

from groupwire.ui import customers, feed, groups, login, webhook_pages

router = APIRouter()
router.include_router(login.router)
router.include_router(groups.router)
router.include_router(customers.router)
router.include_router(feed.router)
router.include_router(webhook_pages.router)

__all__ = ["router"]
