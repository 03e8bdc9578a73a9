"""Operator tools as a library: host facts, the tuning check and plan, the cancel-orders client.

``fastmm ops ...`` (:mod:`fastmm.cli.ops`) is only their command line; the supervisor's cancel-left
process, the latency harness and tests call them directly.
"""
