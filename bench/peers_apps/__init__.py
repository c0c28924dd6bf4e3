"""The peers ``make bench-peers`` measures notifyd against: a Celery route and worker, a
procrastinate route and worker. Each route takes notifyd's own ``NotificationCreate`` body and
answers its 202 shape; each task appends the line notifyd's log channel writes (the same drain
work). They need the ``peers`` extra (``pip install -e '.[peers]'``)."""
