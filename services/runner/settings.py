"""Runner settings."""

from pathlib import Path

from libs.settings import ServiceSettings


class RunnerSettings(ServiceSettings):
    service_name: str = "runner"
    # The runner keeps no database; the field only exists because every service shares the base settings.
    database_url: str = ""
    hardware: str = "cpu"
    max_loaded_versions: int = 2
    setup_timeout: float = 600.0
    ack_wait: float = 60.0

    @property
    def versions_cache_dir(self) -> Path:
        return Path(self.data_dir) / "runner" / "versions"

    @property
    def environments_cache_dir(self) -> Path:
        return Path(self.data_dir) / "runner" / "envs"
