#!/usr/bin/env bash
# A real single-node SLURM cluster (munge, MariaDB + slurmdbd for accounting, slurmctld, slurmd) in a folder.
#
#   tests/slurm/start_cluster.sh start DIR   # install (apt) if missing, configure, start; prints "export SLURM_CONF=..."
#   tests/slurm/start_cluster.sh stop DIR    # stop every daemon started in DIR, by the pids in DIR/pids
#
# Runs as root without systemd: every daemon runs in the foreground of its own session, its pid goes to
# DIR/pids. Clients need SLURM_CONF=DIR/slurm.conf (DIR/env.sh exports it). Settings that keep tests fast:
# AuthInfo cred_expire=10 (a requeued job waits that long instead of 120 s) and 5 s scheduler intervals.
# SlurmctldParameters=preempt_send_user_signal makes a preempted job get its --signal (USR2) too.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z "$cmd" || -z "$dir" ]]; then
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

stop_all() {  # TERM to every daemon at once, KILL to any still there after 10 s
  [[ -f "$dir/pids" ]] || return 0
  local pids
  pids=$(awk '{print $2}' "$dir/pids")
  kill $pids 2>/dev/null || true
  for _ in $(seq 100); do
    local alive=""
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ -n "$alive" ]] || break
    sleep 0.1
  done
  kill -9 $pids 2>/dev/null || true
  rm -f "$dir/pids"
  # job step daemons outlive slurmd; ours carry this cluster's SLURM_CONF (inherited from our slurmd)
  local proc
  for proc in /proc/[0-9]*; do
    [[ "$(cat "$proc/comm" 2>/dev/null)" == slurmstepd ]] || continue
    tr '\0' '\n' <"$proc/environ" 2>/dev/null | grep -qx "SLURM_CONF=$dir/slurm.conf" || continue
    pkill -9 -P "${proc#/proc/}" 2>/dev/null || true  # the job's processes
    kill -9 "${proc#/proc/}" 2>/dev/null || true
  done
}

if [[ "$cmd" == stop ]]; then
  stop_all
  exit 0
fi
[[ "$cmd" == start ]] || { echo "unknown command $cmd; use start or stop" >&2; exit 2; }

need=()
for bin in slurmctld slurmd sbatch munged slurmdbd mariadbd; do
  command -v "$bin" >/dev/null || need+=("$bin")
done
if (( ${#need[@]} )); then
  echo "installing SLURM packages (missing: ${need[*]})" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge slurmdbd mariadb-server >&2
fi

stop_all  # a previous cluster in the same folder
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ctld_port=$(free_port); slurmd_port=$(free_port); dbd_port=$(free_port)
mkdir -p "$dir"/{state,spool,log,db,munge}
: >"$dir/pids"
spawn() {  # name, command...: run in the foreground of a new session, remember the pid
  local name=$1; shift
  setsid "$@" >>"$dir/log/$name.out" 2>&1 </dev/null &
  echo "$name $!" >>"$dir/pids"
}
wait_for() {  # description, seconds, test command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "error: $what did not come up within ${secs}s; logs in $dir/log" >&2
  tail -n 20 "$dir"/log/* >&2 || true
  stop_all
  exit 1
}

# munge
dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 755 "$dir/munge"; chmod 400 "$dir/munge/munge.key"
spawn munged munged -F --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.sock" \
  --pid-file="$dir/munge/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
wait_for munged 10 test -S "$dir/munge/munge.sock"

# MariaDB (unix socket only) + slurmdbd
export MYSQL_UNIX_PORT="$dir/db/mysqld.sock"
mariadb-install-db --no-defaults --datadir="$dir/db/data" --user=root --auth-root-authentication-method=normal \
  --skip-test-db >"$dir/log/mariadb-install.log" 2>&1
spawn mariadbd mariadbd --no-defaults --datadir="$dir/db/data" --socket="$MYSQL_UNIX_PORT" --skip-networking \
  --user=root --pid-file="$dir/db/mariadbd.pid" --log-error="$dir/log/mariadbd.log" --innodb-buffer-pool-size=32M
wait_for mariadbd 30 mariadb --no-defaults --socket="$MYSQL_UNIX_PORT" -uroot -e 'select 1'

cat >"$dir/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock
DbdHost=localhost
DbdPort=$dbd_port
SlurmUser=root
LogFile=$dir/log/slurmdbd.log
PidFile=$dir/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
chmod 600 "$dir/slurmdbd.conf"

mem_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
cpus=$(nproc)
cat >"$dir/slurm.conf" <<EOF
ClusterName=semiseg
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/munge.sock,cred_expire=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
SchedulerParameters=bf_interval=5,sched_interval=5
SlurmctldParameters=preempt_send_user_signal
JobRequeue=1
KillWait=10
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
AccountingStoragePass=$dir/munge/munge.sock
JobAcctGatherType=jobacct_gather/none
NodeName=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$dir/slurm.conf"
echo "export SLURM_CONF=$SLURM_CONF" >"$dir/env.sh"

spawn slurmdbd slurmdbd -D  # reads slurmdbd.conf beside $SLURM_CONF
wait_for slurmdbd 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$dbd_port"
sacctmgr -i add cluster semiseg >/dev/null 2>&1 || true
spawn slurmctld slurmctld -D -i -f "$SLURM_CONF"
wait_for slurmctld 30 scontrol ping
spawn slurmd slurmd -D -N localhost -f "$SLURM_CONF"
wait_for "node localhost" 30 bash -c "sinfo -h -N -o '%T' | grep -Eq '^(idle|mixed|allocated)'"
wait_for sacct 30 sacct -n -X -S now
echo "export SLURM_CONF=$SLURM_CONF"
