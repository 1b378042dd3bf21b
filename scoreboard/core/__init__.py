"""The pure core: ranking, rules, commands, records and the engine.

Nothing in this package does I/O, touches asyncio or reads a clock; time is passed in.
"""
