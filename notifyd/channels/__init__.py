"""Delivery channels, one module each; ``registry.build_channels`` makes the set a server offers."""
