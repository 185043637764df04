#!/bin/sh
# Two lite2pg builds, the command a user types, rounds interleaved on one database:
#   bench/ab_migrate.sh OLD/.venv/bin/lite2pg NEW/.venv/bin/lite2pg DB [ROUNDS] [SERVER]
# Each run goes into a freshly created database `bench_ab` on SERVER (default
# postgresql://root@127.0.0.1:5432) and its own run directory; prints wall time and peak RSS.
set -eu
old=$1 new=$2 db=$3 rounds=${4:-3} server=${5:-postgresql://root@127.0.0.1:5432}
# Both packages byte-compiled first, as pip install does (see harness.compile_package).
for exe in "$old" "$new"; do
  py=$(head -n 1 "$exe" | sed 's/^#!//')
  "$py" -m compileall -q "$("$py" -c 'import lite2pg, os; print(os.path.dirname(lite2pg.__file__))')"
done
for round in $(seq "$rounds"); do
  for build in old new; do
    if [ "$build" = old ]; then exe=$old; else exe=$new; fi
    psql -q "$server/postgres" -c "DROP DATABASE IF EXISTS bench_ab" -c "CREATE DATABASE bench_ab" >/dev/null
    run=$(mktemp -d)
    /usr/bin/time -f "$build round $round: %e s, peak RSS %M KB" \
      "$exe" migrate "$db" --target "$server/bench_ab" --run-dir "$run/run" >"$run/out.log" 2>"$run/err.log" \
      || { echo "$build round $round failed: $run/out.log"; exit 1; }
    tail -n 1 "$run/err.log"
    rm -rf "$run"
  done
done
