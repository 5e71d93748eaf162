"""gitd's built-in plugins. Each is registered through the ``gitd.plugins`` entry point
in pyproject.toml, exactly as a third-party plugin would be."""
