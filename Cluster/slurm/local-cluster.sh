#!/usr/bin/env bash
# Brings up (or down) a one-node Slurm cluster on this machine, so that the cluster path —
# sbatch, dependencies, mpirun inside an allocation — is exercised for real:
#   Cluster/slurm/local-cluster.sh up      install slurm-wlm + munge if missing, write the
#                                          config, start munged, slurmctld and slurmd (as root)
#   Cluster/slurm/local-cluster.sh status
#   Cluster/slurm/local-cluster.sh down
# The node is this host with all its CPUs and memory (as `slurmd -C` reports them).
set -euo pipefail
action="${1:-status}"
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
conf=/etc/slurm/slurm.conf
state=/var/spool/slurmctld

case "$action" in
up)
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
  fi
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
  pgrep -x munged >/dev/null || $SUDO -u munge /usr/sbin/munged 2>/dev/null || $SUDO /usr/sbin/munged --force
  pgrep -x slurmctld >/dev/null || $SUDO slurmctld
  pgrep -x slurmd >/dev/null || $SUDO slurmd
  for _ in $(seq 1 30); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE 'idle|mix|alloc'; then break; fi
    sleep 1
  done
  $SUDO scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
  sinfo
  ;;
status)
  sinfo && squeue
  ;;
down)
  $SUDO pkill -x slurmd || true
  $SUDO pkill -x slurmctld || true
  $SUDO pkill -x munged || true
  ;;
*)
  echo "usage: Cluster/slurm/local-cluster.sh up|status|down" >&2
  exit 2
  ;;
esac
