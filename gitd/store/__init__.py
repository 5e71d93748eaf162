"""The SQLite store: schema, migrations and the row-level operations on it."""

from gitd.store.accounts import Accounts
from gitd.store.db import Store, utcnow
from gitd.store.models import Account, Repo, SSHKey, Token
from gitd.store.repos import Repos

__all__ = ["Account", "Accounts", "Repo", "Repos", "SSHKey", "Store", "Token", "utcnow"]
