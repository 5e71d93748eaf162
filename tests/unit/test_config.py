import pytest

from gitd.config import Config, ConfigError, parse_size, split_hostport


def test_defaults_come_from_the_documented_file():
    cfg = Config.load(None, environ={})
    assert cfg.get_str("server.http") == "127.0.0.1:8080"
    assert cfg.get_bool("hooks.enabled") is True
    assert cfg.get_size("plugins.policy.max_blob_size") == 10 * 1024 * 1024


def test_file_overrides_defaults_and_env_overrides_file(tmp_path):
    path = tmp_path / "gitd.toml"
    path.write_text('[server]\nhttp = "0.0.0.0:9000"\n[git]\nmax_processes = 3\n')
    cfg = Config.load(path, environ={"GITD_GIT__MAX_PROCESSES": "7", "GITD_HOOKS__ENABLED": "false",
                                     "GITD_PLUGINS__DISABLED": "a, b", "GITD_DATA": "/ignored"})
    assert cfg.get_str("server.http") == "0.0.0.0:9000"
    assert cfg.get_int("git.max_processes") == 7
    assert cfg.get_bool("hooks.enabled") is False
    assert cfg.get_list("plugins.disabled") == ["a", "b"]


def test_env_can_configure_a_plugin_table_that_is_not_in_the_file():
    cfg = Config.load(None, environ={"GITD_PLUGINS__EXAMPLE__GREETING": "hi"})
    assert cfg.section("plugins.example") == {"greeting": "hi"}


@pytest.mark.parametrize("raw", ["maybe", "2"])
def test_bad_env_values_fail_loudly(raw):
    with pytest.raises(ConfigError):
        Config.load(None, environ={"GITD_HOOKS__ENABLED": raw})


def test_unknown_settings_fail_loudly():
    with pytest.raises(ConfigError):
        Config.load(None, environ={}).get_int("git.max_proceses")


def test_bad_toml_is_reported(tmp_path):
    path = tmp_path / "gitd.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError, match=r"gitd\.toml"):
        Config.load(path, environ={})


def test_sizes():
    assert parse_size("10MiB") == 10 * 1024**2
    assert parse_size("5GB") == 5 * 1000**3
    assert parse_size(1234) == 1234
    assert parse_size("1.5 KiB") == 1536
    with pytest.raises(ConfigError):
        parse_size("ten")


def test_hostport():
    assert split_hostport("127.0.0.1:0", 1) == ("127.0.0.1", 0)
    assert split_hostport("[::1]:22", 1) == ("::1", 22)
    assert split_hostport("example", 8080) == ("example", 8080)


def _leaves(node, prefix=()):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        else:
            yield (*prefix, key), value


def _other_value(value):
    """A different value of the same type, as text for the environment, and as parsed."""
    if isinstance(value, bool):
        return ("false" if value else "true"), (not value)
    if isinstance(value, int):
        return str(value + 7), value + 7
    if isinstance(value, float):
        return str(value + 0.5), value + 0.5
    if isinstance(value, list):
        return "x, y", ["x", "y"]
    return value + "-changed", value + "-changed"


def test_every_shipped_setting_can_be_overridden_from_the_environment():
    import tomllib

    from gitd.config import default_config_text

    leaves = list(_leaves(tomllib.loads(default_config_text())))
    assert len(leaves) > 20
    env, expected = {}, {}
    for path, value in leaves:
        raw, parsed = _other_value(value)
        env["GITD_" + "__".join(p.upper() for p in path)] = raw
        expected[".".join(path)] = parsed
    cfg = Config.load(None, environ=env)
    for dotted, parsed in expected.items():
        assert cfg.raw(dotted) == parsed, dotted
