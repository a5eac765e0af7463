#!/usr/bin/env bash
# The test suite with the machine's clock moved DAYS ahead: harness/future_clock/run.sh DAYS [pytest args]
#
# No test may depend on today's date. Every process of the run (pytest, gunicorn, the embedded
# Postgres and Redis it starts) gets its wall clock DAYS ahead through libfaketime (Debian's
# `faketime` package), so SQL's now() and Python's agree. The monotonic clock is left alone
# (FAKETIME_DONT_FAKE_MONOTONIC=1): when libfaketime moves it too, a thread's timed wait
# (threading.Event.wait) never times out; and monotonic_sleep.c, preloaded first, gives
# clock_nanosleep straight to the kernel, because libfaketime 0.9.10 shifts an absolute monotonic
# deadline anyway and Python's time.sleep fails with EINVAL. One test stays out: under libfaketime
# Postgres's lock and statement timeouts never fire, so the test of the migration lock's timeout
# (a timeout, not a date) would wait forever.
set -euo pipefail
cd "$(dirname "$0")/../.."
days=${1:?usage: harness/future_clock/run.sh DAYS [pytest arguments]}
shift
lib=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
[ -e "$lib" ] || { echo "libfaketime is not installed: run \`sudo apt-get install -y faketime\`" >&2; exit 2; }
if .venv/bin/python - <<'PY'
import sys
from app.config import PROJECT_ROOT
from cli.embedded import EmbeddedServers
status = EmbeddedServers(PROJECT_ROOT / "var" / "test-servers").status()
sys.exit(0 if status["postgres_running"] or status["redis_running"] else 1)
PY
then
    echo "the embedded test servers are running on today's clock; stop the test run that uses them first" >&2
    exit 2
fi
mkdir -p var
cc -shared -fPIC -O2 -o var/monotonic_sleep.so harness/future_clock/monotonic_sleep.c
export LD_PRELOAD="$PWD/var/monotonic_sleep.so $lib" FAKETIME="+${days}d" FAKETIME_DONT_FAKE_MONOTONIC=1
echo "clock moved to $(date -u '+%Y-%m-%d %H:%M UTC')" >&2
exec .venv/bin/python -m pytest -p no:cacheprovider \
    --deselect "tests/service/test_migrations.py::test_a_held_lock_times_out_with_a_clear_message" "$@"
