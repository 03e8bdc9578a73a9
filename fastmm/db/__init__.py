"""Trading records in PostgreSQL (the journal shipper, schema, analytics) and the firm-wide view in Redis.

The journal stays the source of truth; everything here is a copy of it that can be rebuilt.
"""
