"""gitd's documented default configuration (gitd.toml)."""
