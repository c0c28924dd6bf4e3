"""The notification flow: submit, route, deliver, show, prune.

- ``submit``: a notification and one tracked run per recipient, in one transaction.
- ``routing`` / ``destinations``: where a submission goes, and what a run stores of it.
- ``delivery``: the tracked task that delivers one notification to one recipient.
- ``idempotency``: ``Idempotency-Key`` replays.
- ``views``: notifications and runs as the API, CLI and dashboard show them.
- ``retention``: pruning of old runs, notifications and keys.
"""
