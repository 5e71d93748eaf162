"""Operating the daemon: disk-space watermark, storage health, periodic maintenance,
backups and restores, and ``gitd doctor``."""
