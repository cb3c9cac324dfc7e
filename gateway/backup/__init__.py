"""Encrypted backups: one file with the config, extensions, undelivered call records and keys."""
