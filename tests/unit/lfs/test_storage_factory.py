import pytest

from gitd.config import Config, ConfigError
from gitd.lfs.storage.factory import build_storage
from gitd.lfs.storage.local import LocalStorage
from gitd.lfs.storage.s3 import S3Storage, split_endpoint
from gitd.paths import DataDir

S3 = {"GITD_LFS__BACKEND": "s3", "GITD_LFS__S3__ENDPOINT": "minio.internal:9000", "GITD_LFS__S3__SECURE": "false",
      "GITD_LFS__S3__ACCESS_KEY": "k", "GITD_LFS__S3__SECRET_KEY": "s"}


def test_local_is_the_default(tmp_path):
    storage = build_storage(Config.load(None, environ={}), DataDir(tmp_path))
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "lfs"


def test_s3_from_the_environment_presigns_on_the_public_endpoint_only(tmp_path):
    storage = build_storage(Config.load(None, environ=S3), DataDir(tmp_path))
    assert isinstance(storage, S3Storage) and not storage.presign_enabled
    env = {**S3, "GITD_LFS__S3__PUBLIC_ENDPOINT": "https://s3.example.com"}
    storage = build_storage(Config.load(None, environ=env), DataDir(tmp_path))
    url = storage.presign_get("a" * 64, 60)
    assert url.startswith("https://s3.example.com/gitd-lfs/lfs/aa/aa/" + "a" * 64 + "?")
    assert "minio.internal" not in url and "X-Amz-Signature=" in url


@pytest.mark.parametrize("extra, message", [
    ({"GITD_LFS__BACKEND": "ftp"}, "lfs.backend"),
    ({"GITD_LFS__S3__ENDPOINT": ""}, "endpoint is empty"),
    ({"GITD_LFS__S3__DIRECT": "true"}, "public_endpoint"),
    ({"GITD_LFS__S3__PART_SIZE": "1MiB"}, "part_size"),
    ({"GITD_LFS__S3__PUBLIC_ENDPOINT": "https://s3.example.com/sub/path"}, "without a path"),
    ({"GITD_LFS__S3__PREFIX": "noslash"}, "prefix"),
])
def test_bad_settings_fail_at_startup(tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message):
        build_storage(Config.load(None, environ={**S3, **extra}), DataDir(tmp_path))


def test_endpoint_forms():
    assert split_endpoint("h:9000", True) == ("h:9000", True)
    assert split_endpoint("http://h:9000", True) == ("h:9000", False)
    assert split_endpoint("https://h", False) == ("h", True)
