"""notifyd: a self-hosted notification server."""

__version__ = "0.1.0"
