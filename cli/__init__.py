"""The `adaptrec` command: the composition root above the service (app/) and the jobs (jobs/).

Only this package wires the two together: `adaptrec serve` migrates, loads the demo and trains
bootstrap models before it starts gunicorn on `app.api.factory:create_app()`; every other subcommand
runs a job. app/ never imports jobs/ (docs/ARCHITECTURE.md)."""
