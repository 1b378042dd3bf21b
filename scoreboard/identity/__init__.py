"""Identity providers: their keys and what their tokens claim."""
