"""What gitd's kopf operators share (the ``operator`` extra): how they write to the cluster
(``applier``), the configured kubernetes client (``client``, also the plugins' kubernetes
runtimes'), and what their handlers do alike (``reconcile``)."""
