#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, so that the cluster path — sbatch, afterok
# dependencies, mpirun inside an allocation — is exercised for real:
#   Cluster/slurm/local-cluster.sh install   install slurm-wlm and munge from Debian if missing
#   Cluster/slurm/local-cluster.sh up        install, write the config, start munged, slurmctld
#                                            and slurmd (as root) unless already running
#   Cluster/slurm/local-cluster.sh status
#   Cluster/slurm/local-cluster.sh down      stop the daemons `up` started, by the pids it recorded
#                                            (never by name: a cluster already running is left alone)
# The node is this host with all its CPUs and memory (as `slurmd -C` reports them).
set -euo pipefail
action="${1:-status}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
conf=/etc/slurm/slurm.conf
state=/var/spool/slurmctld
pids=/run/mosaic-local-cluster     # pid files of the daemons this script started

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
}

# running NAME: a live (not zombie) process of that name exists.
running() {
  local p
  for p in $(pgrep -x "$1"); do
    [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != "Z" ] && return 0
  done
  return 1
}

# start NAME PIDFILE COMMAND...: runs a daemon unless one is running; records its pid if started.
start() {
  local name="$1" pidfile="$2"
  shift 2
  if running "$name"; then
    echo "local-cluster: $name already running; left alone"
    return
  fi
  $SUDO rm -f "$pidfile"   # a stale one would name a dead daemon
  # Nothing inherited but /dev/null: a caller that waits for the end of this script's output,
  # or for a descriptor it passed down (Foundation's Process watches a socket), must see it.
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done
    exec "$@"
  ) </dev/null >/dev/null 2>&1
  for _ in $(seq 1 50); do [ -s "$pidfile" ] && break; sleep 0.1; done
  $SUDO mkdir -p "$pids"
  $SUDO cp "$pidfile" "$pids/$name.pid"
}

case "$action" in
install)
  install
  ;;
up)
  install
  node="$(slurmd -C | head -1)"          # NodeName=<host> CPUs=... RealMemory=...
  host="$(hostname -s)"
  $SUDO mkdir -p /etc/slurm "$state" /var/spool/slurmd /var/log/slurm /run/munge
  [ -f /etc/munge/munge.key ] || $SUDO /usr/sbin/mungekey --create 2>/dev/null || \
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  $SUDO chown -R munge:munge /etc/munge /run/munge 2>/dev/null || true
  $SUDO chmod 0400 /etc/munge/munge.key
  $SUDO tee "$conf" >/dev/null <<CONF
# Written by Cluster/slurm/local-cluster.sh: a one-node cluster for testing the cluster path.
ClusterName=mosaic-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$state
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
$node State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  # munged runs as its own user (root would need --force).
  if [ -z "$SUDO" ]; then asmunge=(runuser -u munge --); else asmunge=(sudo -u munge); fi
  start munged /run/munge/munged.pid "${asmunge[@]}" /usr/sbin/munged
  start slurmctld /run/slurmctld.pid $SUDO slurmctld
  start slurmd /run/slurmd.pid $SUDO slurmd
  for _ in $(seq 1 30); do
    if timeout 5 sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mix|alloc'; then break; fi
    sleep 1
  done
  timeout 10 $SUDO scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
  timeout 10 sinfo
  ;;
status)
  sinfo && squeue
  ;;
down)
  for name in slurmd slurmctld munged; do
    f="$pids/$name.pid"
    [ -f "$f" ] || continue
    pid="$(cat "$f")"
    # Only if that pid is still the daemon we started (a pid can be reused).
    if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]; then
      $SUDO kill "$pid"
      # A daemon started with SIGTERM blocked (inherited from its caller) gets SIGKILL after 10 s.
      for _ in $(seq 1 100); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then $SUDO kill -9 "$pid"; fi
    fi
    $SUDO rm -f "$f"
  done
  ;;
*)
  echo "usage: Cluster/slurm/local-cluster.sh install|up|status|down" >&2
  exit 2
  ;;
esac
