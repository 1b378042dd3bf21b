"""Who is asking: bearer tokens (local secret or an identity provider), revocation, and
one-time action proofs.
"""
