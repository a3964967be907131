"""Credentials, pure: PASETO tokens by purpose (tokens.py), relay keys (keys.py), device
possession proofs (proof.py), single-use nonces (nonces.py). No I/O, no clock."""
