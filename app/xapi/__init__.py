"""xAPI (the Experience API) as plain rules: what a valid statement is (`statements`) and how one
becomes an adaptrec interaction under a tenant's rules (`mapping`). No Flask, no SQL: the API
(app/api/xapi.py), the ingest (app/catalogue/xapi_ingest.py) and the importer (jobs/importers/xapi.py)
share these."""
