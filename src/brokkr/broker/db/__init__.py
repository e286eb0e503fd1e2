"""PostgreSQL access: the connection pool and the versioned schema migrations."""
