"""Index providers: where index records live. SQLite is built in; Redis and PostgreSQL are extras."""

from .base import Provider, Record, Transaction
from .sqlite import SQLiteProvider

__all__ = ["Provider", "Record", "SQLiteProvider", "Transaction"]
