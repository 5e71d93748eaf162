"""The Kubernetes back end of spaces: a ``Space`` custom resource (``crd.yaml``) that the
daemon writes on every push (``gitd_plugins.spaces.kube``) and a kopf operator
(``handlers``) that reconciles it into a Deployment, a Service and an optional Ingress.

Run the operator with ``kopf run -m gitd_plugins.spaces.operator.handlers --namespace NS``
(or ``gitd spaces operator``).
"""
