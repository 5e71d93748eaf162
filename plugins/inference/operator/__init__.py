"""The Kubernetes back end of inference endpoints: an ``InferenceEndpoint`` custom resource
(``crd.yaml``) that the daemon writes for each endpoint (``gitd_plugins.inference.kube``) and
a kopf operator (``handlers``) that reconciles it into a Deployment (the transformers engine,
vLLM or TGI, with GPU resources and node selectors) and a Service.

Run it with ``gitd operator`` (every plugin's operator), or alone with
``kopf run -m gitd_plugins.inference.operator.handlers --namespace NS``.
"""
