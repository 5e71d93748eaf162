"""Git LFS: pointers, the batch and locks APIs, object storage backends.

Transports use one facade, ``gitd.lfs.service.LfsService`` (see its docstring for the
contract); storage backends implement the capability interfaces of
``gitd.lfs.storage.base``.
"""
