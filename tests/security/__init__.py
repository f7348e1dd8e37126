"""Attacks on the trust model: each test performs one, and it must fail."""
