"""``python -m merchant_backend.cli``, as the installed ``merchant-backend``."""

from merchant_backend.cli import main

main()
