"""Settings: each section declared once; the packaged defaults, a TOML file, `SCOREBOARD_*`
variables and flags, loaded once into a frozen object.
"""
