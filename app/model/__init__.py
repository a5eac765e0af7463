"""The stored model: its parts as types with a format version (`artifact`) and its rows in
Postgres (`store`). Each worker's cache of the active models is app.serving.model_cache."""
