"""Named SQL queries (*.sql) read by app.queries; a package so that installs ship them."""
