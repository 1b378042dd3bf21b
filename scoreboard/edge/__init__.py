"""The shared edge: what HTTP and WebSocket have in common (paths and limits, the error
table and body, client addresses, connection budgets, CORS, admission of live viewers,
strict JSON).
"""
