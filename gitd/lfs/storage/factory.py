"""Pick and build the storage backend that ``[lfs] backend`` names."""

from __future__ import annotations

from gitd.clock import SYSTEM_CLOCK, Clock
from gitd.config import Config, ConfigError
from gitd.lfs.storage.base import ObjectStore
from gitd.lfs.storage.health import StorageHealth
from gitd.lfs.storage.local import LocalStorage
from gitd.lfs.storage.s3 import S3Settings, S3Storage, split_endpoint
from gitd.lfs.storage.s3_chunked import MIN_PART
from gitd.paths import DataDir

BACKENDS = ("local", "s3")


def s3_settings(config: Config) -> S3Settings:
    """``[lfs.s3]`` as settings, checked: a bad value fails at startup, not on first use."""
    settings = S3Settings(
        endpoint=config.get_str("lfs.s3.endpoint"),
        access_key=config.get_str("lfs.s3.access_key"),
        secret_key=config.get_str("lfs.s3.secret_key"),
        bucket=config.get_str("lfs.s3.bucket"),
        region=config.get_str("lfs.s3.region"),
        secure=config.get_bool("lfs.s3.secure"),
        public_endpoint=config.get_str("lfs.s3.public_endpoint"),
        direct=config.get_bool("lfs.s3.direct"),
        prefix=config.get_str("lfs.s3.prefix"),
        part_size=config.get_size("lfs.s3.part_size"),
    )
    if not settings.endpoint:
        raise ConfigError("lfs.backend is \"s3\" but lfs.s3.endpoint is empty")
    if not settings.bucket:
        raise ConfigError("lfs.s3.bucket is empty")
    if settings.direct and not settings.public_endpoint:
        raise ConfigError("lfs.s3.direct needs lfs.s3.public_endpoint (the S3 host clients can reach)")
    if settings.part_size < MIN_PART:
        raise ConfigError("lfs.s3.part_size must be at least 5MiB")
    if settings.prefix.startswith("/") or (settings.prefix and not settings.prefix.endswith("/")):
        raise ConfigError("lfs.s3.prefix must be empty or end with '/' (and not start with one)")
    for name in ("endpoint", "public_endpoint"):
        value = getattr(settings, name)
        if value:
            try:
                split_endpoint(value, settings.secure)
            except ValueError as exc:
                raise ConfigError(f"lfs.s3.{name}: {exc}")
    return settings


def build_storage(config: Config, data: DataDir, *, clock: Clock = SYSTEM_CLOCK) -> ObjectStore:
    backend = config.get_str("lfs.backend")
    threads = max(2, config.get_int("lfs.io_threads"))
    if backend == "local":
        return LocalStorage(data.lfs, fsync=config.get_bool("lfs.fsync"), threads=threads)
    if backend == "s3":
        health = StorageHealth(retry=config.get_float("lfs.unavailable_retry"), clock=clock)
        return S3Storage(s3_settings(config), threads=threads, health=health)
    raise ConfigError(f"lfs.backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
