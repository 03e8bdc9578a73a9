"""Socket-level helpers below the venue shells: kernel timestamps (:mod:`.timestamps`)."""
