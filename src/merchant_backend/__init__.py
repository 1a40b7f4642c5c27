"""merchant-backend: connects merchants' Stripe accounts and keeps their payment state true."""

__version__ = "0.1.0"
