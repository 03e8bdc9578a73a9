"""Coinbase Advanced Trade market data: the pure codec and book (codec.py), the asyncio client."""
