"""PostgreSQL access: the connection pool and the migrations applied at start-up."""
