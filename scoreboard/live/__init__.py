"""The fan-out: one hub that encodes each leaderboard change once and hands it to every
viewer, the messages it speaks, and the sessions it ends.
"""
