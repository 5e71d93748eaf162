"""The fine-tune plugin's settings (``[plugins.finetune]`` in gitd.toml)."""

from __future__ import annotations

from dataclasses import dataclass

from gitd.plugin_api import Duration, SettingsError, Size

DAY, EIGHT_GIB, ONE_MIB, NO_LIMIT = Duration(86400), Size(8 << 30), Size(1 << 20), Size(0)


@dataclass(frozen=True)
class Settings:
    runtime: str = "local"           # "local" (supervised processes on this host), "kubernetes" (FinetuneJob resources)
    endpoint: str = ""               # the URL jobs reach gitd at (empty: the URL the job was created through)
    interpreter: str = ""            # local: the Python that runs jobs (needs torch, transformers, peft, datasets)
    max_running: int = 1             # local: jobs training at once; the others wait, pending
    timeout: Duration = DAY          # a job's longest run; also its tokens' lifetime
    memory: Size = NO_LIMIT          # local: address space per job (RLIMIT_AS; 0: unlimited: torch maps a lot)
    threads: int = 0                 # local: torch threads per job (0: torch decides)
    max_log: Size = ONE_MIB          # bytes of log kept per job (x2: one rotation)
    work_dir: str = ""               # local: downloads and outputs (empty: DATA/plugins/finetune)
    # kubernetes runtime
    namespace: str = "gitd-finetune"
    image: str = "python:3.11-slim"  # an image with torch, transformers, peft, datasets and huggingface_hub
    job_memory: Size = EIGHT_GIB
    job_cpu: str = "4"

    def validate(self) -> None:
        if self.runtime not in ("local", "kubernetes"):
            raise SettingsError(f"plugins.finetune.runtime: local or kubernetes, not {self.runtime!r}")
        if self.max_running < 1:
            raise SettingsError("plugins.finetune.max_running: at least 1")
        if self.runtime == "kubernetes" and not self.endpoint:
            raise SettingsError("plugins.finetune.endpoint: the kubernetes runtime needs the URL pods reach gitd at")
