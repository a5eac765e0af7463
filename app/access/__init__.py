"""Who may ask: API keys (`keys`), tenants (`tenants`) and per-key rate limits (`ratelimit`)."""
