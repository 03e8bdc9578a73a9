"""Shared memory between fastmm's processes: named segments, record dtypes, latest-value channels
(seqlock) and single-producer single-consumer event rings, with ``spin`` or ``block`` waits."""

from fastmm.shm.latest import LatestValue
from fastmm.shm.ring import EventRing, RingFull
from fastmm.shm.segment import (
    InstanceRunning,
    SegmentMissing,
    ShmError,
    list_segments,
    remove_stale_segments,
    segment_name,
    unlink_instance,
)

__all__ = [
    "EventRing",
    "InstanceRunning",
    "LatestValue",
    "RingFull",
    "SegmentMissing",
    "ShmError",
    "list_segments",
    "remove_stale_segments",
    "segment_name",
    "unlink_instance",
]
