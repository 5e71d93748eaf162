"""Who is asking, and what they may do.

* ``auth``: ``Authenticator``, credentials (API tokens, signed tokens) to a ``Principal``;
* ``rules``: ``Access``, the one function that decides what a principal may do with a repository.
"""
