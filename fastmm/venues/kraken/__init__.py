"""Kraken: WebSocket v2 book codec (reference price) and the REST client (hedging)."""
