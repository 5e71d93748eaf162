"""Durable background work: the SQLite job queue, its workers, and the plugin thread pools."""
