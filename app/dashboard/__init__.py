"""The operators' and analysts' dashboard under /dashboard (issue 14): server-rendered pages with
inline SVG charts, signed in with an API key that has the `dashboard` (or `admin`) scope.

routes.py (thin routes) → overview.py, models.py, calibration.py, experiments.py, learners.py
(page data from a connection; SQL in sql/dashboard.sql) → charts.py and stats.py (pure).
web.py is the session gate; sessions.py the session store; rollup.py the request-metrics history.
The app factory calls routes.init_app(app).
"""
