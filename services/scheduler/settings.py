"""Scheduler settings."""

from libs.settings import ServiceSettings


class SchedulerSettings(ServiceSettings):
    service_name: str = "scheduler"
    grpc_port: int = 50052
    registry_addr: str = "127.0.0.1:50051"
    # How often due Cancel-After deadlines are looked for.
    deadline_sweep_interval: float = 1.0
