"""Everything that speaks Stripe: event types, signatures, event shapes and the API client."""
