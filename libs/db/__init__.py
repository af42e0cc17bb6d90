"""Database access: the async engine factory and the migration runner."""

from libs.db.engine import create_engine, sqlalchemy_url

__all__ = ["create_engine", "sqlalchemy_url"]
