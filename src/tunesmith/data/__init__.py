"""Reading, checking, splitting and caching user data. Nothing here imports torch."""
