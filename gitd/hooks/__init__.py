"""Where ref updates meet the plugins: the hook chain, and the socket git's hooks call.

* ``chain``: ``HookChain``, pre-receive (veto) and post-receive (durable jobs) for every
  ref update, whatever path it came by;
* ``api``: the internal hook API that git's receive hooks call on a Unix socket;
* ``server``: ``HookServer``, that socket's minimal HTTP/1.1 server;
* ``sessions``: ``PushSessions``, one token per git receive-pack.
"""
