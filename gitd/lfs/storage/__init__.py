"""LFS object storage backends; see ``base`` for the interfaces and ``factory`` for the choice."""
