"""The library database: peewee models, schema migrations and every query."""
