"""Notifications (SMS, voice, e-mail, WeChat, webhook) sent to people: mounted here.

The notifier (connectors/notify) keeps its own store and will offer
``list_notifications(...)`` in ``connectors/notify/store.py``; its read endpoints
(``GET /api/v1/notifications``) belong in this router, with the ``read`` permission. Until
then the router is empty and included, so adding routes needs no change elsewhere.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["notifications"])
