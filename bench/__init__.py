"""Benchmark (`python -m bench`) and fault campaign (`python -m bench.faults`) of the payment
sagas, driven over HTTP against the local stack like a merchant, a customer and a gateway would."""
