"""Database access: migrations and connections."""
