"""HTTP: the management API, the Stripe webhook receiver and the operator endpoints."""
