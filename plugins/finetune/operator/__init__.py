"""The Kubernetes back end of fine-tune jobs: a ``FinetuneJob`` custom resource (``crd.yaml``)
that the daemon writes for each job (``gitd_plugins.finetune.kube``) and kopf handlers
(``handlers``) that render it into a ConfigMap (the training program and its spec) and a
Job, and report the Job's outcome on the resource's status.

Run them with ``kopf run -m gitd_plugins.finetune.operator.handlers --namespace NS``.
"""
