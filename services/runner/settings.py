"""Runner settings (environment variables `COGWHEEL_<FIELD>`)."""

from pathlib import Path

from libs.settings import ServiceSettings


class RunnerSettings(ServiceSettings):
    service_name: str = "runner"
    # The runner keeps no database; the field only exists because every service shares the base settings.
    database_url: str = ""
    hardware: str = "cpu"
    max_loaded_versions: int = 2
    # Scheduled instances (loaded workers the scheduler placed here) this node hosts at most.
    instance_slots: int = 4
    # GPU memory (MiB) the node offers its instances; 0: the total of the GPUs it detects (none: 0).
    node_gpu_memory_mib: int = 0
    setup_timeout: float = 600.0
    # A running job is confirmed (in_progress) every ack_wait/3 seconds; a runner that dies stops confirming,
    # and JetStream hands its job to another runner once this many seconds have passed.
    ack_wait: float = 10.0
    # A prediction running longer fails; a model overrides it with `COGWHEEL_PREDICT_TIMEOUT` in cog.yaml's
    # `environment`.
    predict_timeout: float = 1800.0
    # How long a worker may ignore a cancel (or a timeout) before it is killed and replaced.
    cancel_grace: float = 5.0
    # File inputs given as URLs.
    download_max_bytes: int = 100 * 1024 * 1024
    download_timeout: float = 60.0
    # Networks file-input downloads may reach although not public, comma-separated (none by default).
    download_allowed_networks: str = ""
    # Runs of one job before its prediction fails for good instead of being redelivered again.
    job_max_deliver: int = 5
    # Logs kept per prediction: the first and the latest bytes, a marker line in between.
    log_head_bytes: int = 256 * 1024
    log_tail_bytes: int = 256 * 1024
    # Log bytes a prediction's Server-Sent Events stream carries at most.
    stream_log_bytes: int = 4 * 1024 * 1024
    # Progress reports to the scheduler: at most this often, slowing down as a prediction produces more.
    progress_interval: float = 0.25
    progress_max_interval: float = 5.0
    heartbeat_interval: float = 5.0
    # The gateway's public origin: `/v1/files/<id>` URLs on it are read from the files bucket directly.
    public_url: str = ""
    # Private key (base64 X25519) that opens the secret inputs the scheduler sealed; only runners hold it.
    secrets_private_key_file: str = ""

    @property
    def versions_cache_dir(self) -> Path:
        return Path(self.data_dir) / "runner" / "versions"

    @property
    def environments_cache_dir(self) -> Path:
        return Path(self.data_dir) / "runner" / "envs"

    @property
    def sandboxes_dir(self) -> Path:
        """Per-worker scratch directories of sandboxed models (their /tmp and input files).

        One folder per runner process: a runner clears its own at start-up, and the nodes of one installation
        share the data directory, so clearing a shared one would pull the mounts from under another node's
        running models.
        """
        return Path(self.data_dir) / "runner" / "sandboxes" / (self.instance_id or "runner")

    @property
    def inputs_dir(self) -> Path:
        return Path(self.data_dir) / "runner" / "inputs"
