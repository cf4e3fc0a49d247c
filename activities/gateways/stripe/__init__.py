"""Stripe: the adapter over the official SDK, webhook verification and the pure event parser."""
