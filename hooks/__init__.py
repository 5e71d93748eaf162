"""gitd's git hook programs (installed by the daemon into DATA/hooks)."""
