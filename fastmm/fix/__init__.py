"""FIX for fastmm: codec (framing), FIXT.1.1 session core (sans-I/O), sequence store, asyncio transport."""
