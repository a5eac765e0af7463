"""The stored model: its rows in Postgres (`store`) and each worker's cache of the active ones
(`cache`)."""
