"""Alert webhooks: Alertmanager's ``webhook_config`` (payload version 4) and Grafana's webhook
contact point, at ``POST /v1/hooks/alertmanager/{destination}`` and ``/v1/hooks/grafana/...``.

One notification per payload: the subject ``[FIRING:2] DiskFull``, a message listing each
alert's labels and summary, the payload in ``data`` (a bounded form when it would pass the 16 KiB
limit, marked ``notifyd_truncated``). Alertmanager sends a firing group again every repeat
interval: the same group, status and set of alert fingerprints is delivered once while its
idempotency key lives (24 h); a change of status or of the alerts is delivered at once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import ValidationError

from notifyd.compat.auth import Caller, hook_caller
from notifyd.compat.documents import UnreadableJSON, load_json
from notifyd.compat.publish import has_destination, publish
from notifyd.config import MAX_DATA_BYTES, MAX_MESSAGE_CHARS, MAX_SUBJECT_CHARS
from notifyd.errors import InvalidInput, NotFound
from notifyd.models import NotificationAccepted, NotificationCreate
from notifyd.runtime import Runtime

router = APIRouter(prefix="/v1/hooks", tags=["hooks"], include_in_schema=False)

URGENT_SEVERITIES = frozenset({"critical", "page", "emergency", "urgent", "fatal"})
# Room left under the data limit for the marker saying what was left out.
DATA_BUDGET = MAX_DATA_BYTES - 512
ALERT_KEYS = ("status", "labels", "annotations", "startsAt", "endsAt", "fingerprint")


def _size(value: Any) -> int:
    # Measured as NotificationCreate measures data.
    return len(json.dumps(value).encode())


def _alerts(payload: dict[str, Any]) -> list[dict[str, Any]]:
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise InvalidInput("alerts: a list of alerts is required")
    return [a for a in alerts if isinstance(a, dict)]


def _labels(alert: dict[str, Any]) -> dict[str, str]:
    labels = alert.get("labels")
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def _group_labels(payload: dict[str, Any], key: str) -> dict[str, str]:
    found = payload.get(key)
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def subject(payload: dict[str, Any]) -> str:
    """``[FIRING:2] DiskFull``: the group's status, how many alerts have it, the alert name."""
    alerts = _alerts(payload)
    state = str(payload.get("status") or "firing")
    count = sum(1 for a in alerts if str(a.get("status") or state) == state) or len(alerts)
    common = _group_labels(payload, "commonLabels")
    group = _group_labels(payload, "groupLabels")
    first = _labels(alerts[0]) if alerts else {}
    name = (
        common.get("alertname")
        or group.get("alertname")
        or first.get("alertname")
        or ", ".join(f"{k}={v}" for k, v in sorted(group.items()))
        or str(payload.get("receiver") or "alert")
    )
    return f"[{state.upper()}:{count}] {name}"[:MAX_SUBJECT_CHARS]


def message(payload: dict[str, Any]) -> str:
    """Each alert's status, labels (alertname first) and summary, one block per alert."""
    state = str(payload.get("status") or "firing")
    blocks = []
    for alert in _alerts(payload):
        labels = _labels(alert)
        name = labels.pop("alertname", None)
        shown = ([f"alertname={name}"] if name else []) + [
            f"{k}={v}" for k, v in sorted(labels.items())
        ]
        lines = [f"[{str(alert.get('status') or state).upper()}] {' '.join(shown)}"]
        annotations = alert.get("annotations")
        if isinstance(annotations, dict):
            summary = annotations.get("summary") or annotations.get("description")
            if summary:
                lines.append(f"  {summary}")
        blocks.append("\n".join(lines))
    truncated = payload.get("truncatedAlerts")
    if isinstance(truncated, int) and truncated > 0:
        blocks.append(f"({truncated} more alerts were not sent by Alertmanager)")
    text = "\n".join(blocks) or subject(payload)
    if len(text) > MAX_MESSAGE_CHARS:
        cut = "\n… (cut: the alerts are in data)"
        text = text[: MAX_MESSAGE_CHARS - len(cut)] + cut
    return text


def priority(payload: dict[str, Any]) -> int:
    """Resolved: normal (3); firing: high (4), urgent (5) with a critical/page severity."""
    if str(payload.get("status") or "firing") != "firing":
        return 3
    severities = {
        _labels(a).get("severity", "").lower()
        for a in _alerts(payload)
        if str(a.get("status") or "firing") == "firing"
    }
    severities.add(_group_labels(payload, "commonLabels").get("severity", "").lower())
    return 5 if severities & URGENT_SEVERITIES else 4


def bounded(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload, or when over the data limit a bounded form: the group's fields, each alert
    cut to its status, labels, annotations, times and fingerprint, as many alerts as fit, and
    ``notifyd_truncated`` saying what was left out."""
    if _size(payload) <= MAX_DATA_BYTES:
        return payload
    alerts = _alerts(payload)
    kept: dict[str, Any] = {
        k: v for k, v in payload.items() if k not in ("alerts", "message") and _size(v) <= 2048
    }
    kept["alerts"] = []
    for alert in alerts:
        compact = {k: alert[k] for k in ALERT_KEYS if k in alert}
        if _size(kept) + _size(compact) + 1 > DATA_BUDGET:
            break
        kept["alerts"].append(compact)
    kept["notifyd_truncated"] = {
        "reason": f"the payload is larger than {MAX_DATA_BYTES} bytes",
        "alerts_total": len(alerts),
        "alerts_kept": len(kept["alerts"]),
        "fields_dropped": sorted(set(payload) - set(kept)),
    }
    return kept


def dedup_key(kind: str, destination: str, payload: dict[str, Any]) -> str:
    """The same group, status and set of alert fingerprints give the same key."""
    fingerprints = sorted(
        str(a.get("fingerprint") or json.dumps(_labels(a), sort_keys=True))
        for a in _alerts(payload)
    )
    material = json.dumps(
        [kind, destination, str(payload.get("groupKey") or ""), payload.get("status"), fingerprints]
    )
    return f"{kind}:{hashlib.sha256(material.encode()).hexdigest()[:40]}"


async def _payload(request: Request) -> dict[str, Any]:
    try:
        document = load_json(await request.body())
    except UnreadableJSON as exc:
        raise InvalidInput(
            f"body: must be a JSON object (an alert webhook payload): {exc}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidInput("body: must be a JSON object (an alert webhook payload)")
    _alerts(document)
    return document


async def _receive(
    kind: str, destination: str, request: Request, caller: Caller, response: Response
) -> NotificationAccepted:
    runtime: Runtime = request.app.state.runtime
    if not has_destination(runtime, destination):
        raise NotFound(f"no destination named {destination!r}")
    payload = await _payload(request)
    try:
        body = NotificationCreate(
            destination=destination,
            subject=subject(payload),
            message=message(payload),
            priority=priority(payload),
            data=bounded(payload),
        )
    except ValidationError as exc:
        # Labels or fields no store takes: lone surrogates, NUL, NaN, too deep.
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidInput(f"{where}: {first['msg'].removeprefix('Value error, ')}") from None
    key = dedup_key(kind, destination, payload)
    submission = await publish(runtime, body, caller, idempotency_key=key, fingerprint=key)
    if submission.replayed:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotency-Replay"] = "true"
    response.headers["Location"] = f"/v1/notifications/{submission.accepted.id}"
    return submission.accepted


HookCaller = Annotated[Caller, Depends(hook_caller)]


@router.post("/alertmanager/{destination}", status_code=status.HTTP_202_ACCEPTED)
async def alertmanager(
    destination: str, request: Request, caller: HookCaller, response: Response
) -> NotificationAccepted:
    """Alertmanager's webhook (version 4): one notification per group; repeats delivered once."""
    return await _receive("alertmanager", destination, request, caller, response)


@router.post("/grafana/{destination}", status_code=status.HTTP_202_ACCEPTED)
async def grafana(
    destination: str, request: Request, caller: HookCaller, response: Response
) -> NotificationAccepted:
    """Grafana's webhook contact point: as Alertmanager's, with Grafana's extra fields."""
    return await _receive("grafana", destination, request, caller, response)
