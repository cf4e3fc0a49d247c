"""HTTP emulators of the Stripe and Razorpay APIs, answering their official SDKs."""
