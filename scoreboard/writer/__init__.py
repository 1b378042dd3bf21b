"""The single writer: the one actor that decides, appends to the log, applies and replies."""
