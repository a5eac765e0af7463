"""The `adaptrec` command: the composition root above the service (app/) and the jobs (jobs/).

Only this package wires the two together: `adaptrec serve` migrates, loads the demo and trains
bootstrap models before it starts gunicorn on `app.api.factory:create_app()`; every other subcommand
runs a job. The process wiring lives here too, not in the service: gunicorn's settings
(gunicorn_conf.py) and workers (gunicorn_worker.py), and the embedded Postgres and Redis
(embedded.py) that commands, benches and tests run on when no servers are configured.
app/ never imports jobs/ or cli/ (docs/ARCHITECTURE.md)."""
