"""Tests of the Stripe and Razorpay sandbox, driven through the official SDKs."""
