"""Adapters to the outside: the Peewee database, its schema, migrations and the store."""
