"""Beyond one process on PostgreSQL (SPEC §8): roles, the log tail of followers,
forwarded writes and the standby's takeover."""
