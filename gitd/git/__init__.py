"""Running git: the server programs as streamed subprocesses, refs, and git's environment.

* ``runner``: ``GitRunner``, the one way to run upload-pack / receive-pack / upload-archive;
* ``process``: ``GitProcess``, one child and its pipes as an asyncio protocol;
* ``popen``: ``PopenTransport``, fast child start on uvloop (vfork + pidfd);
* ``gateway``: ``GitGateway``, what every transport shares: authorise, run, push session;
* ``refs``: ref reads and atomic (compare-and-swap) ref updates;
* ``env``: the one builder of git's environment and hardened ``-c`` settings.
"""
