"""The connector's version, as pyproject.toml says it (a test keeps the two the same): the
deployed package has no pyproject.toml."""

VERSION = "0.1.0"
