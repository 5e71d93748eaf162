"""Limits that keep the daemon available under hostile load: connections per client
address and in all (``connections``), request rates per client address and per token
(``rates``). Git process slots are ``gitd.git.slots``."""
