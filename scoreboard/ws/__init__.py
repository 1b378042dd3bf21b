"""The WebSocket port: the handshake, the live stream, and the server that starts and stops
the live parts.
"""
