"""Venue adapters: one folder per venue (codec pure, sessions and clients as thin shells)."""
