"""The HTTP front: starts and steers the sagas, and turns verified gateway webhooks into signals."""
