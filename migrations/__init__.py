"""Numbered SQL migrations applied by app.infra.migrations; a package so that installs ship them."""
