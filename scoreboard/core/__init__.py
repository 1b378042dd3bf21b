"""The pure core: records, commands, rules, ranking, the engine and the parts it composes
(idempotency keys, quota windows, spent proofs, abuse counters).

Nothing in this package does I/O, touches asyncio or reads a clock; time is passed in.
"""
