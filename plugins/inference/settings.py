"""The inference plugin's settings (``[plugins.inference]`` in gitd.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.plugin_api import Duration, SettingsError, Size

ENGINES = ("transformers", "vllm", "tgi")
EIGHT_GIB, NONE, ONE_MIB = Size(8 << 30), Size(0), Size(1 << 20)
IDLE, START, MONTH = Duration(900), Duration(600), Duration(30 * 86400)
LOCAL_ENGINES = ("transformers",)


@dataclass(frozen=True)
class Settings:
    runtime: str = "local"                          # "local" (engines on this host) or "kubernetes" (the operator)
    max_model_memory: Size = EIGHT_GIB              # weights larger than this (as stored) are refused before loading
    address_space: Size = NONE                      # RLIMIT_AS per engine process (0: none; torch maps much)
    sleep_time: Duration = IDLE                     # idle seconds before an endpoint scales to zero (0: never)
    start_timeout: Duration = START                 # seconds an engine may take to fetch, load and listen
    rate_limit: float = 60.0                        # requests per minute per endpoint (0: unlimited)
    burst: int = 10                                 # requests at once above the rate
    device: str = "auto"                            # auto (a GPU where present), cpu, cuda
    threads: int = 0                                # torch threads per engine (0: torch's default)
    concurrency: int = 8                            # generations at once per engine
    python: str = ""                                # the engines' interpreter (empty: the daemon's)
    max_log: Size = ONE_MIB                         # bytes of log kept per endpoint (x2: one rotation)
    max_restarts: int = 3                           # crashes in a row before an endpoint stays failed
    token_ttl: Duration = MONTH                     # life of the read token an engine fetches its model with
    work_dir: str = ""                              # caches, logs (empty: DATA/plugins/inference)
    hub_url: str = ""                               # where local engines fetch models (empty: the URL requests came to)
    # kubernetes runtime
    namespace: str = "gitd-inference"
    public_url: str = ""                            # how pods reach gitd (HF_ENDPOINT)
    image: str = ""                                 # the transformers engine's image (gitd with the inference extra)
    vllm_image: str = "vllm/vllm-openai:v0.6.3"
    tgi_image: str = "ghcr.io/huggingface/text-generation-inference:2.4.0"
    gpu_resource: str = "nvidia.com/gpu"

    def validate(self) -> None:
        if self.runtime not in ("local", "kubernetes"):
            raise SettingsError(f"plugins.inference.runtime: local or kubernetes, not {self.runtime!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise SettingsError(f"plugins.inference.device: auto, cpu or cuda, not {self.device!r}")
        if self.rate_limit < 0 or self.burst < 1:
            raise SettingsError("plugins.inference.rate_limit must be >= 0 and burst >= 1")
        if self.runtime == "kubernetes" and not self.public_url:
            raise SettingsError("plugins.inference.public_url: the kubernetes runtime needs the URL pods reach gitd at")
