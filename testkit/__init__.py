"""Test and benchmark support: drive the stack like a merchant, check the money invariants."""
