#!/usr/bin/env bash
# The nightly report job: export the last 24 h of every configured town, build
# the report site into a dated directory of the published tree, point
# `latest/` at it, and write one self-contained incident file per town with
# violations or a stuck or degraded verdict. .github/workflows/nightly-report.yml
# runs exactly this script, and tests/test_workflows.py runs it on the demo
# fleet, so the two cannot drift apart. See docs/nightly.md.
#
# Environment (all optional):
#   REPORTGEN_TOWNS        where the towns are: a directory or file of town
#                          databases, or an http(s) URL of one database or of
#                          a .tar.gz/.tgz/.zip of them. Empty: the demo fleet.
#   REPORTGEN_TOWNS_TOKEN  bearer token sent when downloading REPORTGEN_TOWNS.
#   REPORTGEN_WINDOW_TO    window end (ISO, UTC). Default: now, to the minute.
#   REPORTGEN_WINDOW_HOURS window length in hours. Default: 24.
#   REPORTGEN_RUN_LABEL    name of the dated directory. Default: today (UTC).
#   REPORTGEN_KEEP_RUNS    dated runs kept in the published tree. Default: 90.
#   REPORTGEN_FULL_RUNS    of those, the newest kept whole; older ones are thinned
#                          to their index, episode and finding pages. Default: 4.
#   REPORTGEN_TICKS        where the ticks come from (reportgen build --ticks):
#                          auto (default), recorded or replay.
#   PAGES_DIR              the published tree (restored from the data branch
#                          by the workflow). Default: pages.
#   WORK_DIR               scratch space. Default: nightly.
#   PAGES_BASE_URL         the site's public URL, for the links in the summary.
#   REPORTGEN, PYTHON      the commands to run. Default: reportgen, python3.
#   SENTRY_DSN, SENTRY_ENVIRONMENT  passed through: new violations alert.
#   GITHUB_OUTPUT, GITHUB_STEP_SUMMARY  set by GitHub Actions.
#
# Exit status: 0 when the run was published (the `status` output then says
# whether every town built: 0, or 4 when some failed); the build's own code
# when nothing could be published: 1 or 2, or 5 when every town failed to
# build (the previous run then stays the latest, its history unchanged).
set -euo pipefail

REPORTGEN=${REPORTGEN:-reportgen}
PYTHON=${PYTHON:-python3}
PAGES_DIR=${PAGES_DIR:-pages}
WORK_DIR=${WORK_DIR:-nightly}
HOURS=${REPORTGEN_WINDOW_HOURS:-24}
KEEP=${REPORTGEN_KEEP_RUNS:-90}
FULL=${REPORTGEN_FULL_RUNS:-4}
TOWNS=${REPORTGEN_TOWNS:-}

log() { printf 'nightly: %s\n' "$*" >&2; }

output() {
  printf '%s=%s\n' "$1" "$2"
  if [[ -n "${GITHUB_OUTPUT:-}" ]]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi
}

summary() {
  if [[ -n "${GITHUB_STEP_SUMMARY:-}" ]]; then printf '%s\n' "$@" >>"$GITHUB_STEP_SUMMARY"; fi
}

rm -rf "$WORK_DIR"
mkdir -p "$WORK_DIR/towns" "$WORK_DIR/exports" "$WORK_DIR/incident" "$PAGES_DIR/runs"

# --- 1. sources: downloaded or local town databases, or the demo fleet -------
sources=()
if [[ -z "$TOWNS" ]]; then
  log "REPORTGEN_TOWNS is not set: building the bundled demo fleet"
elif [[ "$TOWNS" =~ ^https?:// ]]; then
  name=${TOWNS%%\?*}
  name=${name##*/}
  auth=()
  if [[ -n "${REPORTGEN_TOWNS_TOKEN:-}" ]]; then
    auth=(-H "Authorization: Bearer $REPORTGEN_TOWNS_TOKEN")
  fi
  curl --fail --silent --show-error --location --retry 3 "${auth[@]}" \
    --output "$WORK_DIR/download" "$TOWNS"
  case "$name" in
    *.tar.gz | *.tgz) tar -xzf "$WORK_DIR/download" -C "$WORK_DIR/towns" ;;
    *.zip) "$PYTHON" -m zipfile -e "$WORK_DIR/download" "$WORK_DIR/towns" ;;
    *) mv "$WORK_DIR/download" "$WORK_DIR/towns/${name:-town.sqlite}" ;;
  esac
  TOWNS="$WORK_DIR/towns"
fi
if [[ -n "$TOWNS" ]]; then
  if [[ -d "$TOWNS" ]]; then
    while IFS= read -r -d '' file; do sources+=("$file"); done < <(
      find "$TOWNS" -maxdepth 2 -type f \( -name '*.sqlite' -o -name '*.sqlite3' -o -name '*.db' \) \
        -print0 | sort -z
    )
  elif [[ -f "$TOWNS" ]]; then
    sources=("$TOWNS")
  fi
  if [[ ${#sources[@]} -eq 0 ]]; then
    log "no town databases (*.sqlite, *.sqlite3, *.db) found in $TOWNS"
    exit 2
  fi
fi

# --- 2. export the window of every town (a failing town does not stop the run)
failed_exports=()
build_args=()
if [[ ${#sources[@]} -gt 0 ]]; then
  end=$(date -u -d "${REPORTGEN_WINDOW_TO:-now}" +%s)
  end=$((end - end % 60))
  to=$(date -u -d "@$end" +%Y-%m-%dT%H:%M:%SZ)
  from=$(date -u -d "@$((end - HOURS * 3600))" +%Y-%m-%dT%H:%M:%SZ)
  log "window $from .. $to for ${#sources[@]} town(s)"
  for source in "${sources[@]}"; do
    stem=$(basename "$source")
    stem=${stem%.*}
    if ! "$REPORTGEN" export --db "$source" --from "$from" --to "$to" \
      --out "$WORK_DIR/exports/$stem.sqlite" >&2; then
      failed_exports+=("$stem")
    fi
  done
  if ! compgen -G "$WORK_DIR/exports/*.sqlite" >/dev/null; then
    log "no town could be exported"
    exit 2
  fi
  build_args+=("$WORK_DIR/exports")
fi

# --- 3. build tonight's run in its dated directory, history carried over ------
label=${REPORTGEN_RUN_LABEL:-$(date -u +%Y-%m-%d)}
if [[ ! "$label" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]]; then
  log "REPORTGEN_RUN_LABEL must be letters, digits, '.', '_' or '-': $label"
  exit 2
fi
run=$label
n=2
while [[ -e "$PAGES_DIR/runs/$run" ]]; do # a dated URL, once published, never changes
  run="$label.$n"
  n=$((n + 1))
done
# The pages' "Reproduce" commands name each town's bundle as the workflow's
# bundles-<run> artefact holds it (the demo fleet has no artefact).
reproduce=()
if [[ ${#build_args[@]} -gt 0 ]]; then reproduce=(--artefact "bundles-$run"); fi
history=()
if [[ -f "$PAGES_DIR/history.jsonl" ]]; then history=(--history "$PAGES_DIR/history.jsonl"); fi
# With SENTRY_DSN set, build sends one event per new episode, linked to its stable
# permalink (written by `reportgen publish` below); the summary links there too.
links=()
if [[ -n "${PAGES_BASE_URL:-}" ]]; then
  links=(--base-url "${PAGES_BASE_URL%/}/runs/$run/" --permalink-base "${PAGES_BASE_URL%/}")
fi
status=0
"$REPORTGEN" build "${build_args[@]}" --ticks "${REPORTGEN_TICKS:-auto}" \
  --out "$PAGES_DIR/runs/$run" "${history[@]}" "${links[@]}" "${reproduce[@]}" ||
  status=$?
# The cache beside a run (.<run>.cache) only speeds up rebuilding the same
# directory, which a dated run never is: keep caches out of the published tree.
find "$PAGES_DIR/runs" -mindepth 1 -maxdepth 1 -type d -name '.*.cache' -exec rm -rf {} +
if [[ $status -eq 5 ]]; then
  log "every town failed to build (exit 5): nothing published, the previous run stays the latest"
  summary "" "### Nothing published" "" "Every town failed to build; the previous run stays the latest."
  exit 5
fi
if [[ $status -ne 0 && $status -ne 4 ]]; then
  log "reportgen build failed (exit $status): nothing published"
  exit "$status"
fi
if [[ ${#failed_exports[@]} -gt 0 ]]; then status=4; fi

# --- 4. the published tree: history, latest/ and the list of runs -------------
cp "$PAGES_DIR/runs/$run/history.jsonl" "$PAGES_DIR/history.jsonl"
redirect() { # redirect FILE TARGET: Pages keeps no symlinks, so a page that forwards
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<EOF
<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Reconciler report: latest run</title>
<meta http-equiv="refresh" content="0; url=$2">
<link rel="canonical" href="$2">
</head><body><p>The latest run is <a href="$2">$run</a>.</p></body></html>
EOF
}
redirect "$PAGES_DIR/latest/index.html" "../runs/$run/index.html"
redirect "$PAGES_DIR/index.html" "runs/$run/index.html"
printf '%s\n' "$run" >"$PAGES_DIR/latest/run.txt"

# Retention and permalinks: the newest $FULL runs whole, older ones thinned to
# their index, episode and finding pages, runs beyond $KEEP deleted; then
# permalinks/ rewritten from every run it has seen (docs/nightly.md).
"$REPORTGEN" publish "$PAGES_DIR" --full-runs "$FULL" --keep-runs "$KEEP" >&2
mapfile -t runs < <(find "$PAGES_DIR/runs" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f\n' | sort -V)
{
  printf '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
  printf '<title>Reconciler report: runs</title></head><body>\n<h1>Runs</h1>\n<ul>\n'
  for ((i = ${#runs[@]} - 1; i >= 0; i--)); do
    thin=""
    if [[ ! -d "$PAGES_DIR/runs/${runs[i]}/towns" ]]; then thin=" (index, episodes and findings only)"; fi
    printf '<li><a href="%s/index.html">%s</a>%s</li>\n' "${runs[i]}" "${runs[i]}" "$thin"
  done
  printf '</ul>\n<p><a href="../permalinks/index.html">Permalinks</a>: every episode and finding, never removed.</p>\n</body></html>\n'
} >"$PAGES_DIR/runs/index.html"

# --- 5. one incident file per town that needs attention -----------------------
# A town needs attention when it has violation episodes or its verdict is stuck
# or degraded (a stuck town often breaks no invariant); both come from the
# run's index.json. For exported towns the bundle of each town is found through
# its manifest, so --single-file replays one source instead of searching them all.
"$PYTHON" - "$PAGES_DIR/runs/$run/index.json" "$WORK_DIR/exports" >"$WORK_DIR/towns.tsv" <<'EOF'
import json, sqlite3, sys
from pathlib import Path

index = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
new = {e["town_id"] for e in index["episodes"] if e["status"] == "new"}
for town in index["towns"]:
    if any(f["status"] == "new" and not f["expected"] for f in town.get("findings") or ()):
        new.add(town["town_id"])
bundles = {}
for bundle in sorted(Path(sys.argv[2]).glob("*.sqlite")):
    conn = sqlite3.connect(f"file:{bundle}?mode=ro", uri=True)
    row = conn.execute("SELECT value FROM manifest WHERE key = 'town_id'").fetchone()
    conn.close()
    if row:
        bundles[json.loads(row[0])] = str(bundle)
for town in index["towns"]:
    if town["episodes"] or town.get("verdict") in ("stuck", "degraded"):
        tid = town["town_id"]
        print(f"{tid}\t{'new' if tid in new else 'old'}\t{bundles.get(tid, '')}")
EOF
mapfile -t towns <"$WORK_DIR/towns.tsv"
new_towns=0
for line in "${towns[@]}"; do
  IFS=$'\t' read -r town is_new bundle <<<"$line"
  file="$WORK_DIR/incident/${town//[^A-Za-z0-9._-]/_}.html"
  if [[ -n "$bundle" ]]; then
    "$REPORTGEN" build "$bundle" --single-file "$file" "${reproduce[@]}" >&2
  else
    "$REPORTGEN" build "${build_args[@]}" --single-file "$file" --town "$town" "${reproduce[@]}" >&2
  fi
  if [[ "$is_new" == new ]]; then new_towns=$((new_towns + 1)); fi
done

# --- 6. outputs and the step summary -----------------------------------------
output run_label "$run"
output run_dir "$PAGES_DIR/runs/$run"
output incident_dir "$WORK_DIR/incident"
output status "$status"
base=${PAGES_BASE_URL:-}
base=${base%/}
summary "" "### Published" ""
if [[ -n "$base" ]]; then
  summary "- this run: $base/runs/$run/index.html" "- latest: $base/latest/" \
    "- permalinks: $base/permalinks/index.html"
else
  summary "- this run: runs/$run/index.html (PAGES_BASE_URL not set)"
fi
summary "- ${#towns[@]} town(s) stuck, degraded or with violations ($new_towns with new ones): incident files in the \`incident-$run\` artefact"
for stem in "${failed_exports[@]}"; do summary "- export failed: \`$stem\` (see the log)"; done
log "published runs/$run (status $status; ${#runs[@]} run(s) kept)"
