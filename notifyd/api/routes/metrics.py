"""Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from notifyd.api.auth import ReadAccess
from notifyd.api.deps import RuntimeDep
from notifyd.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    dependencies=[ReadAccess],
    response_class=Response,
    responses={200: {"description": "Prometheus text exposition.", "content": {"text/plain": {}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: accepted notifications, attempts by outcome and duration, the queue."""
    body = await asyncio.to_thread(runtime.metrics.render)
    return Response(body, media_type=CONTENT_TYPE)
