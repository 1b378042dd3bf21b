"""Read models: what GET, live views and events read from the committed state."""
