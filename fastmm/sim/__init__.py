"""Venue simulators that speak the real protocols on loopback, driven by recorded data."""
