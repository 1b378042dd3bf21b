"""Runtime helpers every layer may use: owned tasks, structured logs, metrics."""
