"""Turning Stripe events into the current state of a merchant's objects."""
