"""Activities: every piece of I/O a saga does (gateways, ledger, merchant callback)."""
