"""The operator's dashboard at ``/ui/``: server-rendered pages over the notification views and
tracking's admin, with its own assets (no CDN) and a strict Content-Security-Policy."""
