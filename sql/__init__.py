"""Named SQL queries (*.sql) read by app.infra.queries; a package so that installs ship them."""
