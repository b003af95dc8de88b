"""The store: models, engine and session factories, and Alembic migrations."""
