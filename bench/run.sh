#!/usr/bin/env bash
# run.sh benchmarks drawbridge against nginx doing the same job (HTTPS in,
# HTTPS out to a self-signed backend that is verified against its
# certificate and the name backend.internal), plus the backend on its own,
# and drawbridge again with API keys checked against a bolt or a redis
# store, and writes bench/RESULTS.md. See bench/README.md.
#
# Knobs (environment):
#   BENCH_ROUNDS=3           interleaved rounds
#   BENCH_DURATION=10s       length of each measured wrk phase
#   BENCH_WARMUP=2s          warm-up before each peer's phases
#   BENCH_C1000_DURATION     length of the 1000-connection RSS check (default: BENCH_DURATION, at least 5s)
#   BENCH_PEERS="nginx drawbridge drawbridge-key-bolt drawbridge-key-redis direct"
#   BENCH_OUT=bench/RESULTS.md
#   DRAWBRIDGE_BIN=path      use this binary instead of building ./cmd/drawbridge
#   BENCH_SERVER_CPU=1 BENCH_LOAD_CPU=0
#   BENCH_REDIS_CPU          CPU of redis-server (default: BENCH_LOAD_CPU; see below)
#   BENCH_PAIRS=16           cycles of the paired keyed-vs-plain comparison (0: none)
#   BENCH_PAIR_DURATION=2s   length of each phase of those cycles
#   BENCH_KEEP=1             keep the temp dir (configs, logs, wrk output)
#   BENCH_STRICT=1           fail on any non-2xx response (CI's smoke run)
set -euo pipefail

ROUNDS=${BENCH_ROUNDS:-3}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
C1000_DURATION=${BENCH_C1000_DURATION:-$DURATION}
PAIRS=${BENCH_PAIRS:-16}
PAIR_DURATION=${BENCH_PAIR_DURATION:-2s}
PEERS=${BENCH_PEERS:-nginx drawbridge drawbridge-key-bolt drawbridge-key-redis direct}
SERVER_CPU=${BENCH_SERVER_CPU:-1}
LOAD_CPU=${BENCH_LOAD_CPU:-0}
# redis-server is a shared service on its own host once there are several
# replicas; on the server core it would bill its CPU to the gateway, which
# a deployment never pays. By default it shares the load generator's core
# (wrk uses well under half of it); BENCH_REDIS_CPU=$SERVER_CPU measures the
# worst case of Redis on the gateway's own core.
REDIS_CPU=${BENCH_REDIS_CPU:-$LOAD_CPU}
CONNS=50
URL_PATH=/api/orders/42

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
OUT=${BENCH_OUT:-$here/RESULTS.md}

# nginx lives in /usr/sbin and Go in /usr/local/go/bin, often not on PATH.
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# --- arguments and tools ----------------------------------------------------

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS=$ROUNDS: want a positive integer"
[[ $PAIRS =~ ^(0|[1-9][0-9]*)$ ]] || die "BENCH_PAIRS=$PAIRS: want a whole number"
for d in "$DURATION" "$WARMUP" "$C1000_DURATION" "$PAIR_DURATION"; do
	[[ $d =~ ^[1-9][0-9]*[sm]?$ ]] || die "duration $d: want e.g. 10s or 1m"
done
for p in $PEERS; do
	case $p in nginx | drawbridge | drawbridge-key-bolt | drawbridge-key-redis | direct) ;;
	*) die "BENCH_PEERS: unknown peer $p (want nginx, drawbridge, drawbridge-key-bolt, drawbridge-key-redis, direct)" ;;
	esac
done

# has_peer PEER tells whether PEER was selected.
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
# keyed tells whether PEER is drawbridge demanding an API key.
keyed() { [[ $1 == drawbridge-key-* ]]; }

# secs converts a wrk duration (10, 10s, 2m) to seconds.
secs() {
	local d=$1
	case $d in
	*m) echo $((${d%m} * 60)) ;;
	*s) echo "${d%s}" ;;
	*) echo "$d" ;;
	esac
}

# The 1000-connection check needs a few seconds for wrk -t1 to bring all its
# TLS connections up, so it never runs shorter than 5 s by default.
[[ -n ${BENCH_C1000_DURATION:-} ]] || (($(secs "$C1000_DURATION") >= 5)) || C1000_DURATION=5s

need=(wrk openssl go taskset ss curl pgrep)
has_peer nginx && need+=(nginx)
has_peer drawbridge-key-redis && need+=(redis-server)
missing=()
for t in "${need[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if ((${#missing[@]})); then
	die "missing tools: ${missing[*]}
  install on Debian/Ubuntu with:  apt-get install -y nginx wrk redis-server openssl util-linux iproute2 curl procps
  Go: https://go.dev/dl (expects 'go' on PATH or in /usr/local/go/bin)"
fi

ncpu=$(nproc)
((ncpu > SERVER_CPU && ncpu > LOAD_CPU && ncpu > REDIS_CPU)) || die "need CPUs $LOAD_CPU and $SERVER_CPU for pinning, have $ncpu (set BENCH_SERVER_CPU/BENCH_LOAD_CPU)"

# 1000 keep-alive connections plus their upstream side need descriptors.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then ulimit -n 65536; else ulimit -n "$hard"; fi
(($(ulimit -n) >= 4096)) || log "warning: ulimit -n is $(ulimit -n); the 1000-connection check may fail"

CLK_TCK=$(getconf CLK_TCK)

# --- temp dir and cleanup ---------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/drawbridge-bench.XXXXXX")
# nginx workers drop privileges when started as root; let them traverse.
chmod 711 "$tmp"
mkdir -p "$tmp/logs" "$tmp/wrk" "$tmp/nginx/logs" "$tmp/drawbridge" "$tmp/drawbridge-key-bolt" \
	"$tmp/drawbridge-key-redis" "$tmp/redis"
chmod 755 "$tmp/nginx"

pids=()
cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	for p in ${pids[@]+"${pids[@]}"}; do kill "$p" 2>/dev/null || true; done
	for p in ${pids[@]+"${pids[@]}"}; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if ((rc != 0)) && [[ -d $tmp/logs ]]; then
		for f in "$tmp"/logs/{backend,nginx,drawbridge,drawbridge-key-bolt,drawbridge-key-redis,redis,keys}.log \
			"$tmp"/nginx/logs/error.log; do
			[[ -s $f ]] || continue
			printf -- '--- last lines of %s\n' "${f#"$tmp"/}" >&2
			tail -n 15 "$f" >&2
		done
	fi
	if [[ -n ${BENCH_KEEP:-} ]]; then
		printf 'bench: kept %s\n' "$tmp" >&2
	else
		rm -rf "$tmp"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# forget drops a PID from the cleanup list once it has been stopped.
forget() {
	local p keep=()
	for p in ${pids[@]+"${pids[@]}"}; do [[ $p == "$1" ]] || keep+=("$p"); done
	pids=(${keep[@]+"${keep[@]}"})
}

# stop terminates one process we started and waits (bounded) for it to go.
stop() {
	local pid=$1
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

# --- ports, certificates, binaries ------------------------------------------

# free_port picks an unused port below the kernel's ephemeral range, so the
# load generator's own client ports can never collide with it.
# It sets the variable named by its argument (not a subshell, so used_ports
# keeps track of what was handed out).
used_ports=" "
free_port() {
	local -n port_var=$1
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 12000))
		[[ $used_ports == *" $p "* ]] && continue
		if [[ -z $(ss -Htln "sport = :$p") ]]; then
			used_ports+="$p "
			port_var=$p
			return
		fi
	done
	die "no free port found on 127.0.0.1"
}
free_port BACKEND_PORT
free_port NGINX_PORT
free_port DRAWBRIDGE_PORT
free_port KEY_BOLT_PORT
free_port KEY_REDIS_PORT
free_port REDIS_PORT

# mkcert NAME CN SAN writes $tmp/NAME.crt and $tmp/NAME.key: a self-signed
# end-entity certificate (RSA 2048, what on-prem load balancers commonly
# carry), not a CA.
mkcert() {
	local name=$1 cn=$2 san=$3
	cat >"$tmp/$name.cnf" <<-EOF
		[req]
		prompt = no
		distinguished_name = dn
		x509_extensions = ext
		[dn]
		CN = $cn
		[ext]
		basicConstraints = critical,CA:FALSE
		extendedKeyUsage = serverAuth
		subjectAltName = $san
	EOF
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -config "$tmp/$name.cnf" \
		-keyout "$tmp/$name.key" -out "$tmp/$name.crt" >"$tmp/logs/openssl.log" 2>&1 ||
		die "generating $name certificate: $(tail -n 3 "$tmp/logs/openssl.log")"
}
log "generating certificates in $tmp"
mkcert backend backend.internal "DNS:backend.internal,IP:127.0.0.1"
mkcert front localhost "DNS:localhost,IP:127.0.0.1"
openssl verify -CAfile "$tmp/backend.crt" -verify_hostname backend.internal "$tmp/backend.crt" >/dev/null ||
	die "backend certificate does not verify against itself"

log "building backend"
(cd "$repo" && go build -o "$tmp/backend" ./bench/backend) >"$tmp/logs/build.log" 2>&1 ||
	die "building bench/backend: $(tail -n 5 "$tmp/logs/build.log")"

DRAWBRIDGE=
if [[ " $PEERS" == *" drawbridge"* ]]; then
	if [[ -n ${DRAWBRIDGE_BIN:-} ]]; then
		[[ -x $DRAWBRIDGE_BIN ]] || die "DRAWBRIDGE_BIN=$DRAWBRIDGE_BIN is not executable"
		DRAWBRIDGE=$DRAWBRIDGE_BIN
	else
		log "building drawbridge"
		(cd "$repo" && go build -o "$tmp/drawbridge-bin" ./cmd/drawbridge) >"$tmp/logs/build.log" 2>&1 ||
			die "building ./cmd/drawbridge failed (run without it: BENCH_PEERS='nginx direct'):
$(tail -n 10 "$tmp/logs/build.log")"
		DRAWBRIDGE=$tmp/drawbridge-bin
	fi
fi

# --- configurations -----------------------------------------------------------

# drawbridge_config PORT STORE [KEYED] prints a drawbridge configuration.
# With KEYED, the route demands an x-api-key and a plan "gold" exists whose
# throttle and quota are far above what the run can reach: the keyed peers
# measure the cost of checking a key and counting it, never a refusal.
# Admin is off, so `drawbridge keys` opens the store itself.
drawbridge_config() {
	local port=$1 store=$2 keyed=${3:-}
	cat <<-EOF
		listeners:
		  - name: public
		    addr: 127.0.0.1:$port
		    tls: {cert: $tmp/front.crt, key: $tmp/front.key}
		admin:
		  addr: "off"
		upstreams:
		  backend:
		    targets: [https://127.0.0.1:$BACKEND_PORT]
		    tls:
		      server_name: backend.internal
		      ca: $tmp/backend.crt
		routes:
		  - path: /{proxy+}
		    methods: [ANY]
		    upstream: backend
	EOF
	if [[ -n $keyed ]]; then
		cat <<-EOF
			    api_key_required: true
			plans:
			  gold:
			    throttle: {rate: 1000000, burst: 1000000}
			    quota: {limit: 1000000000, period: MONTH}
		EOF
	fi
	cat <<-EOF
		store: $store
		log:
		  access: "off"
	EOF
}
drawbridge_config "$DRAWBRIDGE_PORT" "{type: memory}" >"$tmp/drawbridge/drawbridge.yaml"
drawbridge_config "$KEY_BOLT_PORT" "{type: bolt, path: $tmp/drawbridge-key-bolt/state.db}" keyed \
	>"$tmp/drawbridge-key-bolt/drawbridge.yaml"
drawbridge_config "$KEY_REDIS_PORT" "{type: redis, addr: 127.0.0.1:$REDIS_PORT}" keyed \
	>"$tmp/drawbridge-key-redis/drawbridge.yaml"

# The nginx configuration does the same job as drawbridge's, with stock
# defaults otherwise; temp paths are set because the compiled-in ones are
# outside the prefix.
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
worker_rlimit_nofile 8192;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    upstream backend {
        server 127.0.0.1:$BACKEND_PORT;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl http2;
        ssl_certificate $tmp/front.crt;
        ssl_certificate_key $tmp/front.key;
        location / {
            proxy_pass https://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $tmp/backend.crt;
            proxy_ssl_name backend.internal;
            proxy_ssl_server_name on;
            proxy_ssl_session_reuse on;
        }
    }
}
EOF
if [[ " $PEERS " == *" nginx "* ]]; then
	nginx -t -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" >"$tmp/logs/nginx-t.log" 2>&1 ||
		die "nginx -t: $(tail -n 5 "$tmp/logs/nginx-t.log")"
fi

# --- processes ------------------------------------------------------------------

# wait_ready waits (bounded) until PORT accepts connections, failing if PID exits.
wait_ready() {
	local port=$1 pid=$2 what=$3
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || die "$what exited during startup"
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	die "$what did not listen on 127.0.0.1:$port within 10s"
}

# check_ok makes one verified request through a peer so a misconfigured
# proxy fails the run instead of measuring error pages. Extra arguments go
# to curl.
check_ok() {
	local port=$1 what=$2 body
	shift 2
	body=$(curl -fsS --max-time 5 --cacert "$tmp/front.crt" "$@" "https://127.0.0.1:$port$URL_PATH" 2>&1) ||
		die "$what: request through https://127.0.0.1:$port failed: $body"
	[[ $body == *backend.internal* ]] || die "$what: unexpected body: $body"
}

# check_status PORT WHAT WANT [curl args...] dies unless a request through
# the peer answers with status WANT.
check_status() {
	local port=$1 what=$2 want=$3 got
	shift 3
	got=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$tmp/front.crt" "$@" \
		"https://127.0.0.1:$port$URL_PATH" 2>&1) || die "$what: request through https://127.0.0.1:$port failed: $got"
	[[ $got == "$want" ]] || die "$what: got status $got, want $want ($*)"
}

# The redis store's server is part of the server side, so it shares the
# proxy's CPU. It lives for the whole run (the key is created once) and
# keeps nothing on disk.
REDIS_PID=
start_redis() {
	taskset -c "$REDIS_CPU" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
		--dir "$tmp/redis" >>"$tmp/logs/redis.log" 2>&1 &
	REDIS_PID=$!
	pids+=("$REDIS_PID")
	wait_ready "$REDIS_PORT" "$REDIS_PID" redis-server
}

# The keyed peers' x-api-key: 40 random alphanumerics, given with --value
# so the script knows it without parsing it out of the CLI's output.
API_KEY=$(openssl rand -base64 96 | tr -dc 'A-Za-z0-9')
API_KEY=${API_KEY:0:40}
((${#API_KEY} == 40)) || die "could not generate an API key"

# create_key PEER creates the bench key in PEER's store with the gateway not
# running, so the CLI opens the store itself.
create_key() {
	local peer=$1 out
	out=$(cd "$tmp/$peer" && "$DRAWBRIDGE" keys create -c drawbridge.yaml --name bench --plan gold --value "$API_KEY" 2>&1 |
		tee -a "$tmp/logs/keys.log") || die "$peer: drawbridge keys create: $out"
	grep -qxF "key: $API_KEY" <<<"$out" || die "$peer: drawbridge keys create did not print the key: $out"
}

if has_peer drawbridge-key-bolt; then
	log "creating the API key in the bolt store"
	create_key drawbridge-key-bolt
fi
if has_peer drawbridge-key-redis; then
	log "starting redis-server and creating the API key in it"
	start_redis
	create_key drawbridge-key-redis
fi

start_backend() {
	taskset -c "$SERVER_CPU" "$tmp/backend" -addr "127.0.0.1:$BACKEND_PORT" \
		-cert "$tmp/backend.crt" -key "$tmp/backend.key" >>"$tmp/logs/backend.log" 2>&1 &
	BACKEND_PID=$!
	pids+=("$BACKEND_PID")
	wait_ready "$BACKEND_PORT" "$BACKEND_PID" backend
}

# peer_port prints the port a drawbridge peer listens on.
peer_port() {
	case $1 in
	drawbridge) echo "$DRAWBRIDGE_PORT" ;;
	drawbridge-key-bolt) echo "$KEY_BOLT_PORT" ;;
	drawbridge-key-redis) echo "$KEY_REDIS_PORT" ;;
	*) die "peer_port: $1 is not a drawbridge peer" ;;
	esac
}

# start_peer starts PEER (and the backend, unless NO_BACKEND is given:
# the paired cycles share one) and sets PEER_PID, PEER_PORT and
# PEER_WRK_ARGS (what wrk adds to every request).
start_peer() {
	local peer=$1
	PEER_WRK_ARGS=()
	[[ -n ${2:-} ]] || start_backend
	case $peer in
	direct)
		PEER_PID=$BACKEND_PID PEER_PORT=$BACKEND_PORT
		# The backend's certificate is for backend.internal; curl checks it
		# by name, so the sanity request goes through the pinned address.
		curl -fsS --max-time 5 --cacert "$tmp/backend.crt" --resolve "backend.internal:$BACKEND_PORT:127.0.0.1" \
			"https://backend.internal:$BACKEND_PORT$URL_PATH" >/dev/null || die "direct: backend request failed"
		return
		;;
	nginx)
		taskset -c "$SERVER_CPU" nginx -p "$tmp/nginx/" -c "$tmp/nginx/nginx.conf" \
			-e "$tmp/nginx/logs/error.log" >>"$tmp/logs/nginx.log" 2>&1 &
		PEER_PID=$! PEER_PORT=$NGINX_PORT
		;;
	drawbridge | drawbridge-key-*)
		(cd "$tmp/$peer" && exec taskset -c "$SERVER_CPU" "$DRAWBRIDGE" serve -c drawbridge.yaml) \
			>>"$tmp/logs/$peer.log" 2>&1 &
		PEER_PID=$! PEER_PORT=$(peer_port "$peer")
		;;
	esac
	pids+=("$PEER_PID")
	wait_ready "$PEER_PORT" "$PEER_PID" "$peer"
	if keyed "$peer"; then
		# A keyed peer that let requests through without the key would
		# measure plain drawbridge under another name.
		check_status "$PEER_PORT" "$peer" 403
		check_status "$PEER_PORT" "$peer" 403 -H "x-api-key: not-the-bench-key-0123456789"
		PEER_WRK_ARGS=(-H "x-api-key: $API_KEY")
		check_status "$PEER_PORT" "$peer" 200 "${PEER_WRK_ARGS[@]}"
	fi
	check_ok "$PEER_PORT" "$peer" ${PEER_WRK_ARGS[@]+"${PEER_WRK_ARGS[@]}"}
}

stop_peer() {
	[[ $PEER_PID == "$BACKEND_PID" ]] || stop "$PEER_PID"
	stop "$BACKEND_PID"
}

# --- measurement ------------------------------------------------------------------

# tree lists PID and its children (nginx: master and worker).
tree() { echo "$1" $(pgrep -P "$1" || true); }

# rss_kb sums VmRSS over PIDS, in kB.
rss_kb() {
	local p sum=0 v
	for p in "$@"; do
		v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# cpu_ticks sums utime+stime (clock ticks) over PIDS; the comm field is
# skipped first because it may contain spaces.
cpu_ticks() {
	local p sum=0 v
	for p in "$@"; do
		v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}' || true)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# core_times prints "busy total" jiffies for each pinned core.
core_times() {
	awk -v a="cpu$LOAD_CPU" -v b="cpu$SERVER_CPU" '
		$1 == a || $1 == b { t = 0; for (i = 2; i <= NF; i++) t += $i; busy[$1] = t - $5 - $6; tot[$1] = t }
		END { print busy[a], tot[a], busy[b], tot[b] }' /proc/stat
}

# sample_peak writes "peak_rss_kb peak_connections" to FILE every 200 ms
# until killed or LIMIT seconds pass: the highest summed RSS of PIDS and the
# most established connections to 127.0.0.1:PORT.
sample_peak() {
	local file=$1 limit=$2 port=$3 max=0 conns=0 r n end
	shift 3
	end=$((SECONDS + limit))
	while ((SECONDS < end)); do
		r=$(rss_kb "$@")
		n=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l || true)
		((r > max)) && max=$r
		((n > conns)) && conns=$n
		# Write then rename, so a reader never sees a half-written file.
		echo "$max $conns" >"$file.new" && mv -f "$file.new" "$file"
		sleep 0.2
	done
}

# wrk_run NAME PORT CONNS DURATION [wrk args...] runs wrk pinned to the
# load core and leaves its output in $tmp/wrk/NAME.txt.
wrk_run() {
	local name=$1 port=$2 conns=$3 dur=$4
	shift 4
	taskset -c "$LOAD_CPU" wrk -t1 -c"$conns" -d"$dur" --latency ${PEER_WRK_ARGS[@]+"${PEER_WRK_ARGS[@]}"} "$@" \
		"https://127.0.0.1:$port$URL_PATH" >"$tmp/wrk/$name.txt" 2>&1 ||
		die "wrk $name: $(tail -n 5 "$tmp/wrk/$name.txt")"
}

# wrk_parse FILE prints: requests req/s p50_ms p99_ms non2xx socket_errors.
wrk_parse() {
	awk '
		function ms(v) {
			if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
			if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
			if (v ~ /m$/) return substr(v, 1, length(v) - 1) * 60000
			if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
			return v + 0
		}
		/requests in/ { req = $1 }
		/^Requests\/sec:/ { rps = $2 }
		/^ +50%/ { p50 = ms($2) }
		/^ +99%/ { p99 = ms($2) }
		/Non-2xx or 3xx responses:/ { non2xx = $NF }
		/Socket errors:/ { gsub(/,/, ""); sock = $4 + $6 + $8 + $10 }
		END {
			if (req == "" || rps == "") exit 1
			printf "%d %.0f %.2f %.2f %d %d\n", req, rps, p50, p99, non2xx, sock
		}' "$1"
}

RAW=$tmp/raw.txt
: >"$RAW"

# measure ROUND PEER PHASE CONNS DURATION IDLE_KB [wrk args...] runs one
# measured phase and appends a line to $RAW:
# round peer phase requests rps p50 p99 non2xx sockerr idle_kb peak_kb
#   proxy_us_per_req backend_us_per_req load_core% server_core% peak_conns
#   store_us_per_req (redis-server's CPU; 0 for other peers)
measure() {
	local round=$1 peer=$2 phase=$3 conns=$4 dur=$5 idle=$6
	shift 6
	local name="$round-$peer-$phase" procs t0 b0 c0 s0 t1 b1 c1 s1 sampler peak parsed req rps p50 p99 non2xx sock conns
	local store=()
	[[ $peer == drawbridge-key-redis ]] && store=("$REDIS_PID")
	procs=$(tree "$PEER_PID")
	echo "$idle 0" >"$tmp/peak"
	# The sampler shares the load core: it must not steal the server's CPU.
	# shellcheck disable=SC2086 # procs is a list of PIDs
	taskset -c "$LOAD_CPU" bash -c "$(declare -f rss_kb sample_peak); sample_peak \"\$@\"" sampler \
		"$tmp/peak" $(($(secs "$dur") + 10)) "$PEER_PORT" $procs &
	sampler=$!
	pids+=("$sampler")
	t0=$(cpu_ticks $procs) b0=$(cpu_ticks "$BACKEND_PID") s0=$(cpu_ticks ${store[@]+"${store[@]}"}) c0=$(core_times)
	wrk_run "$name" "$PEER_PORT" "$conns" "$dur" "$@"
	t1=$(cpu_ticks $procs) b1=$(cpu_ticks "$BACKEND_PID") s1=$(cpu_ticks ${store[@]+"${store[@]}"}) c1=$(core_times)
	stop "$sampler"
	read -r peak conns <"$tmp/peak" || true
	[[ ${peak:-} =~ ^[0-9]+$ && ${conns:-} =~ ^[0-9]+$ ]] || die "$name: no RSS samples"
	parsed=$(wrk_parse "$tmp/wrk/$name.txt") || die "could not parse wrk output for $name"
	read -r req rps p50 p99 non2xx sock <<<"$parsed"
	# At 1000 connections the point is memory; a run too short to finish
	# requests still measures it.
	[[ $req -gt 0 || $phase == c1000 ]] || die "$name: wrk completed no requests: $(tail -n 4 "$tmp/wrk/$name.txt")"
	((req > 0)) || log "warning: $name completed no requests; raise BENCH_C1000_DURATION"
	# CI's smoke run sets BENCH_STRICT=1: a proxy answering errors is a
	# broken proxy, not a slow one.
	if [[ ${BENCH_STRICT:-0} == 1 && $phase != c1000 ]] && ((non2xx > 0)); then
		die "$name: $non2xx non-2xx responses"
	fi
	awk -v round="$round" -v peer="$peer" -v phase="$phase" -v parsed="$parsed" \
		-v idle="$idle" -v peak="$peak" -v conns="$conns" -v req="$req" -v hz="$CLK_TCK" \
		-v dt=$((t1 - t0)) -v db=$((b1 - b0)) -v ds=$((s1 - s0)) -v c0="$c0" -v c1="$c1" -v direct=$([[ $peer == direct ]] && echo 1 || echo 0) '
		BEGIN {
			split(c0, a); split(c1, b)
			load = (b[2] - a[2]) ? 100 * (b[1] - a[1]) / (b[2] - a[2]) : 0
			server = (b[4] - a[4]) ? 100 * (b[3] - a[3]) / (b[4] - a[4]) : 0
			proxy = req ? dt * 1e6 / hz / req : 0
			backend = (req && !direct) ? db * 1e6 / hz / req : 0
			store = req ? ds * 1e6 / hz / req : 0
			printf "%s %s %s %s %d %d %.1f %.1f %.0f %.0f %d %.1f\n", round, peer, phase, parsed, idle, peak, proxy, backend, load, server, conns, store
		}' >>"$RAW"
	log "$(tail -n 1 "$RAW" | awk '{printf "%-20s %-5s %8s req/s  p50 %s ms  p99 %s ms  errors %d  peak RSS %.1f MB  proxy %s us/req", $2, $3, $5, $6, $7, $8 + $9, $11 / 1024, $12}')"
}

# --- the run ------------------------------------------------------------------------

start_time=$(date -u +"%Y-%m-%d %H:%M UTC")
# Other work on the machine skews everything; the load averages go into
# the report so a noisy run can be recognised.
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${load_start%% *}" 'BEGIN { exit !(l < 0.5) }' || log "warning: load average is $load_start; results will be noisy"
log "peers: $PEERS; $ROUNDS round(s) of ${WARMUP} warm-up + 2 x $DURATION; server CPU $SERVER_CPU, load CPU $LOAD_CPU"
for round in $(seq 1 "$ROUNDS"); do
	for peer in $PEERS; do
		start_peer "$peer"
		sleep 0.5
		idle=$(rss_kb $(tree "$PEER_PID"))
		wrk_run "$round-$peer-warmup" "$PEER_PORT" "$CONNS" "$WARMUP"
		measure "$round" "$peer" ka "$CONNS" "$DURATION" "$idle"
		measure "$round" "$peer" close "$CONNS" "$DURATION" "$idle" -H "Connection: close"
		stop_peer
	done
done

# Keyed against plain, paired. The machine's speed drifts by tens of
# percent within minutes, more than a key check costs, and the rounds above
# compare phases minutes apart. Here plain drawbridge and the keyed peers
# run at once over one backend (an idle gateway costs nothing measurable)
# and short keep-alive phases alternate between them, so each cycle's
# ratio compares phases seconds apart. The cycles go through every order
# of the peers in turn, so that none always follows the same one (bolt's
# flush after its phase, say, would always land in the next peer's).
PAIR_PEERS=()
for peer in drawbridge drawbridge-key-bolt drawbridge-key-redis; do
	has_peer "$peer" && PAIR_PEERS+=("$peer")
done
if ((PAIRS > 0 && ${#PAIR_PEERS[@]} > 1)) && has_peer drawbridge; then
	log "paired cycles: $PAIRS x (${PAIR_PEERS[*]}) x $PAIR_DURATION keep-alive"
	start_backend
	declare -A pair_pid=()
	for peer in "${PAIR_PEERS[@]}"; do
		start_peer "$peer" shared
		pair_pid[$peer]=$PEER_PID
		wrk_run "pair-$peer-warmup" "$PEER_PORT" "$CONNS" "$WARMUP"
	done
	case ${#PAIR_PEERS[@]} in
	2) orders=("0 1" "1 0") ;;
	3) orders=("0 1 2" "1 2 0" "2 0 1" "0 2 1" "2 1 0" "1 0 2") ;;
	esac
	for cycle in $(seq 1 "$PAIRS"); do
		for i in ${orders[$(((cycle - 1) % ${#orders[@]}))]}; do
			peer=${PAIR_PEERS[$i]}
			PEER_PID=${pair_pid[$peer]} PEER_PORT=$(peer_port "$peer") PEER_WRK_ARGS=()
			keyed "$peer" && PEER_WRK_ARGS=(-H "x-api-key: $API_KEY")
			measure "p$cycle" "$peer" pair "$CONNS" "$PAIR_DURATION" "$(rss_kb $(tree "$PEER_PID"))"
		done
	done
	for peer in "${PAIR_PEERS[@]}"; do stop "${pair_pid[$peer]}"; done
	stop "$BACKEND_PID"
fi

for peer in $PEERS; do
	# The keyed peers would only repeat plain drawbridge's connection cost.
	keyed "$peer" && continue
	start_peer "$peer"
	sleep 0.5
	idle=$(rss_kb $(tree "$PEER_PID"))
	# wrk -t1 needs a few seconds to bring 1000 TLS connections up to
	# speed; a longer request timeout keeps that ramp from counting as errors.
	measure c1000 "$peer" c1000 1000 "$C1000_DURATION" "$idle" -T 10s
	stop_peer
done

# --- report ---------------------------------------------------------------------------

ver() { "$@" 2>&1 | head -n 1 || true; }
go_v=$(ver go version)
nginx_v=$(ver nginx -v)
wrk_v=$(ver wrk -v | sed 's/ Copyright.*//')
db_v=n/a
if [[ -n $DRAWBRIDGE ]]; then
	db_v=$(timeout 5 "$DRAWBRIDGE" version 2>/dev/null | head -n 1 || true)
	[[ -n $db_v ]] || db_v="(\`drawbridge version\` unavailable)"
fi
redis_v=
has_peer drawbridge-key-redis && redis_v="; $(ver redis-server --version | sed 's/ sha=.*//')"
keyed_note=
if has_peer drawbridge-key-bolt || has_peer drawbridge-key-redis; then
	keyed_note="
\`drawbridge-key-bolt\` and \`drawbridge-key-redis\` are \`drawbridge\` with \`api_key_required: true\` on the route and a plan \`gold\` (throttle 1 000 000 req/s, burst 1 000 000; quota 10⁹ a MONTH) over a bolt file or a \`redis-server\` on 127.0.0.1 (pinned to CPU $REDIS_CPU, no persistence; by default the load generator's core, standing in for Redis's own host, so the server core carries only the gateway and the backend; BENCH_REDIS_CPU=$SERVER_CPU puts it on the server core). One key in that plan is made with \`drawbridge keys create\` before the gateway starts, and \`wrk\` sends it as \`x-api-key\` on every request, so each request is a key check plus a throttle and a quota count in the store. Before measuring, each start checks that a request without the key, or with a wrong one, gets 403 and one with it gets 200. The keyed peers skip the 1000-connection check."
	((PAIRS > 0)) && has_peer drawbridge && keyed_note="$keyed_note
The paired comparison then runs $PAIRS cycles of \`wrk -c$CONNS -d$PAIR_DURATION\` keep-alive on plain drawbridge and each keyed peer in turn, all of them running at once over one backend (\`BENCH_PAIRS\`, \`BENCH_PAIR_DURATION\`)."
fi
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)

report=$tmp/RESULTS.md
{
	cat <<EOF
# drawbridge benchmark results

Generated by \`bench/run.sh\` on $start_time (\`BENCH_ROUNDS=$ROUNDS BENCH_DURATION=$DURATION\`).

- Machine: $ncpu CPUs, ${cpu_model:-unknown CPU}, Linux $(uname -r); load average $load_start at start, $load_end at end
- Versions: $go_v; $nginx_v; $wrk_v; drawbridge: $db_v$redis_v

## Method

HTTPS in (RSA 2048, TLS 1.3), HTTPS out to a ~100-byte JSON Go backend whose self-signed certificate is verified against its file and the name \`backend.internal\`; proxy and backend pinned to CPU $SERVER_CPU, \`wrk -t1\` to CPU $LOAD_CPU, traffic on 127.0.0.1 only.
Each round restarts every peer and runs, per peer in turn, a ${WARMUP} warm-up, \`wrk -c$CONNS -d$DURATION\` keep-alive, then the same with \`Connection: close\` (a new TCP connection and full TLS handshake per request); $ROUNDS interleaved round(s), medians shown.
Access logging is off in both proxies (\`log: {access: "off"}\`, \`access_log off\`), so logging is not measured. RSS is VmRSS (nginx: master + worker), sampled every 200 ms; CPU is the proxy's utime+stime over the phase divided by the requests it served.$keyed_note

EOF
	awk -v rounds="$ROUNDS" '
		function median(list,   n, v, i, j, t) {
			n = split(list, v, " ")
			for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
			return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		}
		function minof(list,   n, v, i, m) { n = split(list, v, " "); m = v[1]; for (i = 2; i <= n; i++) if (v[i] + 0 < m + 0) m = v[i]; return m }
		function maxof(list,   n, v, i, m) { n = split(list, v, " "); m = v[1]; for (i = 2; i <= n; i++) if (v[i] + 0 > m + 0) m = v[i]; return m }
		function add(k, v) { vals[k] = (k in vals) ? vals[k] " " v : v }
		function grp(n,   s, r) { s = sprintf("%.0f", n); r = ""; while (length(s) > 3) { r = " " substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }; return s r }
		function mb(kb) { return sprintf("%.1f", kb / 1024) }
		{
			round = $1; peer = $2; phase = $3
			if (!(peer in seen)) { seen[peer] = 1; order[++npeers] = peer }
			k = peer SUBSEP phase
			add(k SUBSEP "rps", $5); add(k SUBSEP "p50", $6); add(k SUBSEP "p99", $7)
			add(k SUBSEP "cpu", $12); add(k SUBSEP "bcpu", $13); add(k SUBSEP "scpu", $17 + 0)
			if (phase == "ka") rps_round[peer SUBSEP round] = $5
			errs[k] += $8 + $9
			if (phase == "pair") {
				# Paired cycles: the round field is "pN".
				cyc = substr(round, 2) + 0; if (cyc > ncyc) ncyc = cyc
				pair_rps[peer SUBSEP cyc] = $5; pair_cpu[peer SUBSEP cyc] = $12; pair_bcpu[peer SUBSEP cyc] = $13
			} else if (phase != "c1000") {
				add(peer SUBSEP "idle", $10)
				pk[peer SUBSEP round] = (pk[peer SUBSEP round] > $11) ? pk[peer SUBSEP round] : $11
			} else {
				add(k SUBSEP "idle", $10); add(k SUBSEP "peak", $11); add(k SUBSEP "conns", $16)
			}
			raw[++nraw] = $0
		}
		END {
			for (i = 1; i <= npeers; i++) {
				p = order[i]
				for (kk in pk) { split(kk, q, SUBSEP); if (q[1] == p) add(p SUBSEP "peak", pk[kk]) }
			}
			print "## Results (medians of " rounds " round" (rounds > 1 ? "s" : "") ")"
			print ""
			print "| peer | req/s (min–max) | p50 / p99 ms | handshakes/s (min–max) | hs p50 / p99 ms | RSS idle / peak MB | proxy CPU µs/req | proxy CPU µs/handshake | errors |"
			print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
			for (i = 1; i <= npeers; i++) {
				p = order[i]; ka = p SUBSEP "ka"; cl = p SUBSEP "close"
				if (!((ka SUBSEP "rps") in vals)) continue
				m_rps[p] = median(vals[ka SUBSEP "rps"]); m_hs[p] = median(vals[cl SUBSEP "rps"])
				m_peak[p] = median(vals[p SUBSEP "peak"]); m_cpu[p] = median(vals[ka SUBSEP "cpu"]); m_hcpu[p] = median(vals[cl SUBSEP "cpu"])
				printf "| %s | %s (%s–%s) | %.2f / %.2f | %s (%s–%s) | %.2f / %.2f | %s / %s | %.0f | %.0f | %d / %d |\n", p,
					grp(m_rps[p]), grp(minof(vals[ka SUBSEP "rps"])), grp(maxof(vals[ka SUBSEP "rps"])),
					median(vals[ka SUBSEP "p50"]), median(vals[ka SUBSEP "p99"]),
					grp(m_hs[p]), grp(minof(vals[cl SUBSEP "rps"])), grp(maxof(vals[cl SUBSEP "rps"])),
					median(vals[cl SUBSEP "p50"]), median(vals[cl SUBSEP "p99"]),
					mb(median(vals[p SUBSEP "idle"])), mb(m_peak[p]), m_cpu[p], m_hcpu[p], errs[ka], errs[cl]
			}
			print ""
			print "Errors are keep-alive / handshake phases summed over rounds (non-2xx responses plus socket errors). For `direct` the \"proxy\" is the backend itself."
			if ("nginx" in m_rps) {
				print ""
				print "### Ratios vs nginx (median / median)"
				print ""
				print "| peer | req/s | handshakes/s | peak RSS | CPU µs/req | CPU µs/handshake |"
				print "|---|---:|---:|---:|---:|---:|"
				for (i = 1; i <= npeers; i++) {
					p = order[i]
					if (!(p in m_rps)) continue
					printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", p, m_rps[p] / m_rps["nginx"], m_hs[p] / m_hs["nginx"],
						m_peak[p] / m_peak["nginx"], m_cpu[p] / m_cpu["nginx"], m_hcpu[p] / m_hcpu["nginx"]
				}
			}
			if ("drawbridge" in m_rps) {
				nk = 0
				for (i = 1; i <= npeers; i++) if (order[i] ~ /^drawbridge-key-/ && order[i] in m_rps) nk++
			}
			if (nk) {
				print ""
				print "### Keyed vs plain drawbridge (target: req/s ratio at least 0.90)"
				print ""
				print "| peer | req/s ratio | per-round ratios | meets 0.90 | handshakes/s ratio | p99 ms keyed / plain | proxy CPU µs/req keyed / plain | redis CPU µs/req |"
				print "|---|---:|---:|---|---:|---:|---:|---:|"
				for (i = 1; i <= npeers; i++) {
					p = order[i]
					if (p !~ /^drawbridge-key-/ || !(p in m_rps)) continue
					r = m_rps[p] / m_rps["drawbridge"]
					# Rounds interleave the peers, so the ratio within one round compares
					# runs minutes apart at most: the range shows the noise.
					rr = ""
					for (j = 1; j <= rounds; j++)
						if ((p SUBSEP j) in rps_round && ("drawbridge" SUBSEP j) in rps_round && rps_round["drawbridge" SUBSEP j] > 0)
							rr = rr (rr == "" ? "" : " ") sprintf("%.2f", rps_round[p SUBSEP j] / rps_round["drawbridge" SUBSEP j])
					printf "| %s | %.2f | %s | %s | %.2f | %.2f / %.2f | %.0f / %.0f | %s |\n", p, r, rr, (r >= 0.90 ? "yes" : "**no**"),
						m_hs[p] / m_hs["drawbridge"],
						median(vals[p SUBSEP "ka" SUBSEP "p99"]), median(vals["drawbridge" SUBSEP "ka" SUBSEP "p99"]),
						m_cpu[p], m_cpu["drawbridge"],
						(p == "drawbridge-key-redis" ? sprintf("%.0f", median(vals[p SUBSEP "ka" SUBSEP "scpu"])) : "–")
				}
				print ""
				print "Ratios are keep-alive medians unless named; p99 and CPU are from the keep-alive phase. The redis column is the CPU redis-server used per request, on top of the proxy CPU."
			}
			if (ncyc && ("drawbridge" SUBSEP 1) in pair_rps) {
				print ""
				print "### Keyed vs plain drawbridge, paired (" ncyc " cycle" (ncyc > 1 ? "s" : "") ")"
				print ""
				print "The drawbridge peers running at once over one backend; each cycle runs a keep-alive phase on each in turn, the cycles going through every order of the peers, so a ratio compares phases seconds apart. The medians are over cycles."
				print ""
				print "| peer | req/s (median) | req/s ratio | per-cycle ratios | meets 0.90 | proxy CPU µs/req | proxy / backend CPU | CPU-normalised req/s ratio | errors |"
				print "|---|---:|---:|---:|---|---:|---:|---:|---:|"
				for (i = 1; i <= npeers; i++) {
					p = order[i]
					if (p !~ /^drawbridge/ || !((p SUBSEP 1) in pair_rps)) continue
					rl = ""; rr = ""; rx = ""; cl = ""; il = ""; nl = ""
					for (j = 1; j <= ncyc; j++) {
						pp = "drawbridge" SUBSEP j
						if (!((p SUBSEP j) in pair_rps) || pair_rps[pp] <= 0 || pair_bcpu[p SUBSEP j] <= 0 || pair_bcpu[pp] <= 0) continue
						# The backend does the same work for every peer, so its CPU per
						# request tells how fast the machine was in that phase.
						ix = pair_cpu[p SUBSEP j] / pair_bcpu[p SUBSEP j]
						ixp = pair_cpu[pp] / pair_bcpu[pp]
						rl = rl (rl == "" ? "" : " ") pair_rps[p SUBSEP j]; cl = cl (cl == "" ? "" : " ") pair_cpu[p SUBSEP j]
						rr = rr (rr == "" ? "" : " ") sprintf("%.2f", pair_rps[p SUBSEP j] / pair_rps[pp])
						rx = rx (rx == "" ? "" : " ") pair_rps[p SUBSEP j] / pair_rps[pp]
						il = il (il == "" ? "" : " ") ix; nl = nl (nl == "" ? "" : " ") (1 + ixp) / (1 + ix)
					}
					if (rr == "") continue
					pe = errs[p SUBSEP "pair"] + 0
					if (p == "drawbridge") {
						printf "| %s | %s | 1.00 | – | – | %.0f | %.2f | 1.00 | %d |\n", p, grp(median(rl)), median(cl), median(il), pe
						continue
					}
					r = median(rx)
					printf "| %s | %s | %.2f | %s | %s | %.0f | %.2f | %.2f | %d |\n", p, grp(median(rl)), r, rr, (r >= 0.90 && pe == 0 ? "yes" : "**no**"),
						median(cl), median(il), median(nl), pe
				}
				print ""
				print "The req/s ratio is what the target names. The speed of this machine changes by up to half within seconds (the backend, whose work never changes, has used from about 55 to over 100 µs per request in one run), so it stays noisy even paired. The last two columns take that out: proxy / backend CPU is the CPU per request of the proxy in units of the CPU per request of the backend in the same phase, and the normalised ratio, (1 + plain) / (1 + keyed) of those, is the req/s ratio that cost gives on a core shared by proxy and backend."
			}
			print ""
			print "## RSS at 1000 keep-alive connections"
			print ""
			print "| peer | connections seen | RSS idle MB | RSS peak MB | req/s | p99 ms | errors |"
			print "|---|---:|---:|---:|---:|---:|---:|"
			for (i = 1; i <= npeers; i++) {
				p = order[i]; k = p SUBSEP "c1000"
				if (!((k SUBSEP "rps") in vals)) continue
				printf "| %s | %d | %s | %s | %s | %.2f | %d |\n", p, vals[k SUBSEP "conns"], mb(vals[k SUBSEP "idle"]), mb(vals[k SUBSEP "peak"]),
					grp(vals[k SUBSEP "rps"]), vals[k SUBSEP "p99"], errs[k]
			}
			print ""
			print "## Raw per-round lines"
			print ""
			print "`ka` = keep-alive, `close` = `Connection: close` (one handshake per request), `c1000` = 1000 keep-alive connections."
			print "Core % = busy share of the load-generator core and of the server core (proxy + backend, and redis-server for the redis peer when it is pinned there) during the phase; `redisus` = redis-server CPU µs per request, wherever it runs."
			print ""
			print "```"
			printf "%-6s %-20s %-6s %9s %8s %8s %8s %7s %7s %8s %8s %9s %9s %6s %6s %6s %8s\n", "round", "peer", "phase", "requests", "req/s", "p50ms", "p99ms", "non2xx", "sockerr", "idleMB", "peakMB", "proxyus", "backendus", "load%", "srv%", "conns", "redisus"
			for (i = 1; i <= nraw; i++) {
				split(raw[i], f, " ")
				printf "%-6s %-20s %-6s %9d %8d %8.2f %8.2f %7d %7d %8.1f %8.1f %9.1f %9.1f %6d %6d %6d %8.1f\n", f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10] / 1024, f[11] / 1024, f[12], f[13], f[14], f[15], f[16], f[17]
			}
			print "```"
		}' "$RAW"
} >"$report"

cp "$report" "$OUT"
log "wrote $OUT"
