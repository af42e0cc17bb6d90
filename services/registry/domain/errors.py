"""Registry domain errors; their class names choose the gRPC status at the edge."""


class RegistryError(Exception):
    """Base of every error the registry reports to callers."""


class InvalidRequest(RegistryError):
    """A command carries a malformed name, enum value or document."""


class AccountNotFound(RegistryError):
    def __init__(self, username: str) -> None:
        super().__init__(f"account {username!r} not found")


class ModelNotFound(RegistryError):
    def __init__(self, owner: str, name: str) -> None:
        super().__init__(f"model {owner}/{name} not found")


class VersionNotFound(RegistryError):
    def __init__(self, version_id: str) -> None:
        super().__init__(f"version {version_id!r} not found")


class TokenNotFound(RegistryError):
    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id!r} not found")


class TokenRevoked(RegistryError):
    """Revocation is final: a revoked token cannot be enabled again."""

    def __init__(self, token_id: str) -> None:
        super().__init__(f"token {token_id!r} is revoked")


class ModelAlreadyExists(RegistryError):
    def __init__(self, owner: str, name: str) -> None:
        super().__init__(f"model {owner}/{name} already exists")


class VersionAlreadyExists(RegistryError):
    """A version id is content-addressed, so it can belong to one model only."""

    def __init__(self, version_id: str, model: str) -> None:
        super().__init__(f"version {version_id!r} already belongs to model {model}")


class Unauthenticated(RegistryError):
    def __init__(self) -> None:
        super().__init__("invalid or disabled API token")


class ModelHasVersions(RegistryError):
    """Replicate refuses to delete a model until its versions are deleted."""

    def __init__(self, owner: str, name: str, count: int) -> None:
        super().__init__(f"model {owner}/{name} still has {count} version(s); delete them first")


class FileNotFound(RegistryError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"file {file_id!r} not found")


class CollectionNotFound(RegistryError):
    def __init__(self, slug: str) -> None:
        super().__init__(f"collection {slug!r} not found")


class VersionInUse(RegistryError):
    """Replicate refuses to delete a version that a deployment runs."""

    def __init__(self, version_id: str, deployments: list[str]) -> None:
        super().__init__(f"version {version_id!r} is used by deployment(s) {', '.join(deployments)}; "
                         "point them at another version or delete them first")


class DeploymentNotFound(RegistryError):
    def __init__(self, owner: str, name: str) -> None:
        super().__init__(f"deployment {owner}/{name} not found")


class DeploymentAlreadyExists(RegistryError):
    def __init__(self, owner: str, name: str) -> None:
        super().__init__(f"deployment {owner}/{name} already exists")
