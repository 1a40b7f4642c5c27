"""Persistence: the database engine, the schema and the repositories that read and write it."""
