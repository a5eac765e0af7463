"""Numbered SQL migrations applied by app.migrations; a package so that installs ship them."""
