#!/usr/bin/env bash
# Runs OLA's `olad` as an sACN/Art-Net peer inside a private network namespace, so interop tests
# talk to a real third-party implementation without any packet leaving the machine.
#
# Usage:
#   scripts/ola-netns.sh start    # (re)create the namespace, (re)start olad, wait for its HTTP API
#   scripts/ola-netns.sh stop     # kill olad, delete the namespace and the config dir
#   scripts/ola-netns.sh status   # exit 0 if olad answers in the namespace
#   scripts/ola-netns.sh exec CMD [ARG]...   # run CMD inside the namespace
#
# `start` and `stop` are idempotent and print nothing but errors (on stderr; exit status != 0).
# `start` on a running namespace restarts olad with the current settings, keeping the namespace.
# Needs root (ip netns), iproute2, olad, setpriv and curl.
#
# The namespace (why: PEERS.md — olad skips loopback for E1.31 and falls back to the real NIC):
#   lo up, route 224.0.0.0/4 dev lo, a port-less bridge `rkbr0` holding
#   198.18.0.1/24 (olad's E1.31 and Art-Net address) and 198.18.0.2/24 (ours), broadcast
#   198.18.0.255. 198.18.0.0/15 is the benchmarking range: nothing routes it, nothing leaves.
#   olad's HTTP API answers on http://127.0.0.1:9090 *inside* the namespace, e.g.
#     scripts/ola-netns.sh exec curl -s 'http://127.0.0.1:9090/get_dmx?u=1'
#     scripts/ola-netns.sh exec ola_set_dmx -u 10 -d 1,2,3
#
# Settings (environment):
#   ROCKONTROL_OLA_NETNS   namespace name (default rk-ola). Several namespaces may run at once;
#                          each has its own olad, ports and config dir.
#   ROCKONTROL_OLA_PATCH   static port patches for ola-port.conf, separated by `;` or newlines.
#                          Port ids: PLUGIN-DEVICE-{I|O}-PORT; plugin 11 is E1.31, 2 is Art-Net.
#                          E1.31 port patched to OLA universe N uses sACN universe N; an Art-Net
#                          port patched to OLA universe N uses Port-Address net:subnet:(N mod 16).
#                          `NAME_priority_value = 150` plus `NAME_priority_mode = 1` give an
#                          output port a static sACN priority.
#                          Default: "11-1-I-0 = 1; 2-1-I-0 = 2" (olad receives sACN universe 1
#                          into OLA universe 1 and Art-Net 0:0:2 into OLA universe 2).
#                          Caution: once olad's E1.31 plugin receives (an I port patched) it turns
#                          multicast loopback off, so its own sACN output is invisible on the host.
#                          Patch E1.31 either as input or as output in one olad run.
#   ROCKONTROL_OLA_E131    extra lines for ola-e131.conf (`;`-separated), e.g.
#                          "input_ports = 32; output_ports = 32" (default 5 each).
#   ROCKONTROL_OLA_ARTNET  extra lines for ola-artnet.conf (`;`-separated), e.g.
#                          "always_broadcast = true" (default: olad sends ArtDmx only to nodes
#                          that subscribed with an ArtPollReply).
#   ROCKONTROL_OLA_IGMP_MAX  net.ipv4.igmp_max_memberships inside the namespace (default: the
#                          kernel's 20). Raise it to let olad receive more than 20 sACN universes.
#   ROCKONTROL_OLA_DIR     config and log dir (default /tmp/rockontrol-ola-$NETNS); the log is
#                          $ROCKONTROL_OLA_DIR/olad.log.
#   ROCKONTROL_OLA_TIMEOUT seconds to wait for the HTTP API (default 15).
set -euo pipefail

NETNS="${ROCKONTROL_OLA_NETNS:-rk-ola}"
DIR="${ROCKONTROL_OLA_DIR:-/tmp/rockontrol-ola-$NETNS}"
TIMEOUT="${ROCKONTROL_OLA_TIMEOUT:-15}"
PATCH="${ROCKONTROL_OLA_PATCH:-11-1-I-0 = 1; 2-1-I-0 = 2}"
E131_EXTRA="${ROCKONTROL_OLA_E131:-}"
ARTNET_EXTRA="${ROCKONTROL_OLA_ARTNET:-}"
IGMP_MAX="${ROCKONTROL_OLA_IGMP_MAX:-}"
BRIDGE=rkbr0
OLA_IP=198.18.0.1
OUR_IP=198.18.0.2

die() {
  echo "ola-netns: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found; install it (scripts/setup.sh installs $2)"
}

netns_exists() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -qx "$NETNS"
}

in_ns() {
  ip netns exec "$NETNS" "$@"
}

# Every olad process inside the namespace (only ours: the namespace is private).
olad_pids() {
  netns_exists || return 0
  local pid
  for pid in $(ip netns pids "$NETNS" 2>/dev/null); do
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = olad ]; then
      echo "$pid"
    fi
  done
}

kill_olad() {
  local pids
  pids="$(olad_pids)"
  [ -z "$pids" ] && return 0
  # shellcheck disable=SC2086
  kill $pids 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ -z "$(olad_pids)" ] && return 0
    sleep 0.1
  done
  pids="$(olad_pids)"
  # shellcheck disable=SC2086
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  sleep 0.2
}

http_ok() {
  in_ns curl -sf -m 1 -o /dev/null "http://127.0.0.1:9090/json/server_stats" 2>/dev/null
}

# `a = b; c = d` → one line each, trimmed.
lines() {
  printf '%s\n' "$1" | tr ';' '\n' | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d'
}

make_netns() {
  if ! netns_exists; then
    ip netns add "$NETNS" || die "cannot create network namespace $NETNS (root needed)"
  fi
  in_ns ip link set lo up
  if ! in_ns ip link show "$BRIDGE" >/dev/null 2>&1; then
    in_ns ip link add "$BRIDGE" type bridge
  fi
  in_ns ip link set "$BRIDGE" up
  in_ns ip addr replace "$OLA_IP/24" broadcast 198.18.0.255 dev "$BRIDGE"
  in_ns ip addr replace "$OUR_IP/24" broadcast 198.18.0.255 dev "$BRIDGE"
  in_ns ip route replace 224.0.0.0/4 dev lo
  if [ -n "$IGMP_MAX" ]; then
    in_ns sysctl -q -w "net.ipv4.igmp_max_memberships=$IGMP_MAX" >/dev/null
  fi
}

write_config() {
  rm -rf "$DIR"
  mkdir -p "$DIR"
  # The other plugins that ship with OLA 0.10.9: all off, so olad opens nothing else.
  local plugin
  for plugin in dummy espnet ftdidmx gpio karate kinet milinst opendeck opendmx openpixelcontrol \
    osc pathport renard sandnet shownet spi stageprofi usbdmx usbserial uartdmx dmx4linux nanoleaf; do
    echo "enabled = false" >"$DIR/ola-$plugin.conf"
  done
  {
    echo "enabled = true"
    echo "ip = $OLA_IP"
    echo "ignore_preview = true"
    echo "use_rev2 = false"
    echo "prepend_hostname = false"
    lines "$E131_EXTRA"
  } >"$DIR/ola-e131.conf"
  {
    echo "enabled = true"
    echo "ip = $OLA_IP"
    echo "use_loopback = false"
    echo "short_name = OLA interop"
    echo "long_name = OLA interop peer (RocKontrol tests)"
    lines "$ARTNET_EXTRA"
  } >"$DIR/ola-artnet.conf"
  lines "$PATCH" >"$DIR/ola-port.conf"
  chown -R olad "$DIR"
}

start() {
  need ip iproute2
  need olad ola
  need setpriv util-linux
  need curl curl
  getent passwd olad >/dev/null || die "user 'olad' missing (the ola package creates it)"
  make_netns
  kill_olad
  write_config
  # olad refuses to run as root; --no-register-with-dns-sd keeps it off avahi.
  in_ns setpriv --reuid=olad --regid=nogroup --clear-groups \
    olad -c "$DIR" -l 3 --no-register-with-dns-sd >"$DIR/olad.log" 2>&1 </dev/null &
  disown || true
  local deadline=$((SECONDS + TIMEOUT))
  until http_ok; do
    if [ -z "$(olad_pids)" ] && [ $SECONDS -gt 1 ]; then
      sleep 0.3
      if [ -z "$(olad_pids)" ]; then
        die "olad exited at start; last lines of $DIR/olad.log:
$(tail -n 20 "$DIR/olad.log" 2>/dev/null)"
      fi
    fi
    [ $SECONDS -ge $deadline ] && die "olad's HTTP API did not answer within ${TIMEOUT}s; see $DIR/olad.log"
    sleep 0.2
  done
}

stop() {
  if netns_exists; then
    kill_olad
    ip netns del "$NETNS" 2>/dev/null || die "cannot delete network namespace $NETNS"
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) netns_exists && http_ok ;;
  exec)
    shift
    netns_exists || die "namespace $NETNS does not exist; run '$0 start' first"
    in_ns "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status|exec CMD..." >&2
    exit 2
    ;;
esac
