"""Infrastructure every room uses: Postgres (`db`, named SQL in `queries`, `migrations`), Redis
(`cache`), logs, metrics and the record of job runs (`jobruns`)."""
