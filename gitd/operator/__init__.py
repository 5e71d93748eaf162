"""What gitd's kopf operators share (the ``operator`` extra): how they write to the cluster
(``applier``)."""
