"""PostgreSQL: the action log, and the sessions (writer lock, read pool) behind it."""
