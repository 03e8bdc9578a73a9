"""fastmm: a low-latency market maker for BTC-PYUSD on TrueX."""

__version__ = "0.1.0"
