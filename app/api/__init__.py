"""HTTP API v1: one blueprint per resource (catalog, interactions, recommendations, experiments,
health, monitoring, openapi), API-key auth, problem+json errors, /openapi.json. The Flask app is
built by app.api.factory.create_app; the request's connection and cache by app.api.context."""
