#!/usr/bin/env bash
# A real single-node Slurm cluster on localhost, for the launcher tests and for trying a sweep's
# Slurm path on one machine: munged, MariaDB + slurmdbd (accounting: submitit reads `sacct` to see
# that Slurm killed a job), slurmctld and slurmd, started without systemd. Debian/Ubuntu, as root.
#
#   eval "$(bash scripts/slurm_local.sh start)"   # prints `export SLURM_CONF=...`
#   bash scripts/slurm_local.sh status
#   bash scripts/slurm_local.sh stop [--purge]     # --purge also deletes the state dir
#
# Environment knobs:
#   UB_SLURM_DIR   state, config, logs, database      (default /tmp/unlearnbench-slurm)
#   UB_SLURM_CPUS  CPUs the node advertises           (default: the real count)
#   UB_SLURM_WAIT  seconds to wait for the node       (default 120)
# .ci/run starts it before `make test` and stops it on exit; tests that need it skip when `sinfo`
# does not answer.
set -euo pipefail

ROOT=${UB_SLURM_DIR:-/tmp/unlearnbench-slurm}
CPUS_ADVERTISED=${UB_SLURM_CPUS:-}
WAIT_S=${UB_SLURM_WAIT:-120}
NODE=localhost          # always resolves: MASTER_ADDR for DDP comes from the node list
PARTITION=debug
DB_PORT=6833
DB_PASSWORD=unlearnbench
ETC=$ROOT/etc RUN=$ROOT/run LOGS=$ROOT/log STATE=$ROOT/state DB=$ROOT/db
export SLURM_CONF=$ETC/slurm.conf
SQL=(mariadb --no-defaults --socket="$RUN/mysqld.sock" -uroot)

say() { echo "[slurm_local] $*" >&2; }
fail() { say "error: $*"; exit 1; }

# A daemon is up when its pid file names a live process of that name. A stopped daemon stays a
# zombie for a while here (PID 1 reaps late), so `kill -0` would say it still runs.
running() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ $state != Z && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]]
}

retry() {  # retry SECONDS WHAT COMMAND...
  local seconds=$1 what=$2 i
  shift 2
  for ((i = 0; i < seconds * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "no $what after ${seconds}s (logs in $LOGS)"
}

halt() {  # halt PIDFILE NAME: TERM, then KILL after 30 s
  local i
  running "$1" "$2" || { rm -f "$1"; return 0; }
  kill -TERM "$(cat "$1")" 2>/dev/null || true
  for ((i = 0; i < 300; i++)); do running "$1" "$2" || break; sleep 0.1; done
  running "$1" "$2" && kill -KILL "$(cat "$1")" 2>/dev/null || true
  rm -f "$1"
}

install_packages() {
  local needed=(munge slurmctld slurmd slurm-client slurmdbd slurm-wlm-mysql-plugin mariadb-server) missing=() p
  for p in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  command -v apt-get >/dev/null || fail "apt-get not found: install ${missing[*]} by hand"
  say "installing ${missing[*]}"
  # The packages' maintainer scripts must not start daemons of their own.
  local blocker=/usr/sbin/policy-rc.d ours=0
  if [[ ! -e $blocker ]]; then printf '#!/bin/sh\nexit 101\n' >$blocker; chmod +x $blocker; ours=1; fi
  local rc=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -q && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
    >"$LOGS/apt.log" 2>&1 || rc=$?
  [[ $ours == 1 ]] && rm -f $blocker
  [[ $rc == 0 ]] || fail "apt-get failed: $(tail -3 "$LOGS/apt.log")"
}

start_munge() {
  if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
  fi
  chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
  munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0   # someone's munged already answers
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  runuser -u munge -- /usr/sbin/munged
  touch "$RUN/munged.ours"
  retry 20 "munge" bash -c 'munge -n | unmunge'
}

write_config() {
  local hw field_cpus field_mem cpus node_line extra=""
  hw=$(/usr/sbin/slurmd -C | head -1)
  field_cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  field_mem=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  [[ -n $field_cpus && -n $field_mem ]] || fail "cannot read the node's CPUs/memory from: $hw"
  cpus=${CPUS_ADVERTISED:-$field_cpus}
  node_line="NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$cpus RealMemory=$field_mem State=UNKNOWN"
  [[ $cpus != "$field_cpus" ]] && extra="SlurmdParameters=config_overrides"
  cat >"$ETC/slurm.conf" <<EOF
# written by scripts/slurm_local.sh: one node (this machine), one partition
ClusterName=unlearnbench
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
MailProg=/bin/true
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default a job without --mem takes the whole node; without EnforcePartLimits an
# impossible request pends forever instead of failing at submission.
DefMemPerCPU=1000
EnforcePartLimits=ALL
ReturnToService=2
InactiveLimit=0
MinJobAge=300
KillWait=5
$extra
$node_line
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOGS/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
EOF
  chmod 0600 "$ETC/slurmdbd.conf"   # slurmdbd refuses a readable password file
}

start_accounting() {
  if ! running "$RUN/mysqld.pid" mariadbd; then
    install -d -o mysql -g mysql "$DB" "$RUN"
    if [[ ! -d $DB/mysql ]]; then
      mariadb-install-db --no-defaults --user=mysql --datadir="$DB" --skip-test-db \
        --auth-root-authentication-method=socket >"$LOGS/mariadb-install.log" 2>&1 \
        || fail "mariadb-install-db failed: $(tail -3 "$LOGS/mariadb-install.log")"
    fi
    setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$DB" --socket="$RUN/mysqld.sock" \
      --pid-file="$RUN/mysqld.pid" --log-error="$LOGS/mariadb.log" --bind-address=127.0.0.1 \
      --port=$DB_PORT --innodb-buffer-pool-size=128M </dev/null >/dev/null 2>&1 &
    retry 60 "MariaDB" "${SQL[@]}" -e 'select 1'
  fi
  "${SQL[@]}" -e "
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
    FLUSH PRIVILEGES;"
  if ! running "$RUN/slurmdbd.pid" slurmdbd; then
    /usr/sbin/slurmdbd
    retry 60 "slurmdbd on port 6819" bash -c '(exec 3<>/dev/tcp/127.0.0.1/6819)'
  fi
}

start_slurm() {
  if ! running "$RUN/slurmctld.pid" slurmctld; then
    /usr/sbin/slurmctld
    retry 60 "slurmctld" bash -c 'scontrol ping | grep -q UP'
  fi
  running "$RUN/slurmd.pid" slurmd || /usr/sbin/slurmd -N "$NODE"
  local i state=""
  for ((i = 0; i < WAIT_S * 5; i++)); do
    state=$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1 || true)
    case $state in
      idle | mixed | allocated | completing) break ;;
      *drain* | down*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] || fail "node $NODE is '$state' after ${WAIT_S}s"
  timeout 60 srun -N1 -n1 -t 1 --mem=100 true || fail "'srun true' failed"
}

start() {
  [[ $(id -u) == 0 ]] || fail "must run as root (it starts munged, MariaDB and the Slurm daemons)"
  install -d "$ROOT" "$ETC" "$RUN" "$LOGS" "$STATE/ctld" "$STATE/slurmd"
  install_packages
  start_munge
  write_config
  start_accounting
  start_slurm
  say "up: partition $PARTITION on $NODE ($(sinfo -h -o '%c CPUs, %m MB'))"
  echo "export SLURM_CONF=$SLURM_CONF"
}

stop() {
  if running "$RUN/slurmctld.pid" slurmctld; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ' || true)
    [[ -n ${jobs// /} ]] && { scancel $jobs 2>/dev/null || true; sleep 1; }
  fi
  halt "$RUN/slurmd.pid" slurmd
  halt "$RUN/slurmctld.pid" slurmctld
  halt "$RUN/slurmdbd.pid" slurmdbd
  halt "$RUN/mysqld.pid" mariadbd
  if [[ -e $RUN/munged.ours ]]; then halt /run/munge/munged.pid munged; rm -f "$RUN/munged.ours"; fi
  [[ ${1:-} == --purge ]] && rm -rf "$ROOT"
  say "stopped"
}

status() {
  local d
  for d in munged:/run/munge/munged.pid mariadbd:$RUN/mysqld.pid slurmdbd:$RUN/slurmdbd.pid \
    slurmctld:$RUN/slurmctld.pid slurmd:$RUN/slurmd.pid; do
    if running "${d#*:}" "${d%%:*}"; then echo "${d%%:*}: up"; else echo "${d%%:*}: down"; fi
  done
  [[ -e $SLURM_CONF ]] && sinfo 2>/dev/null || true
}

case ${1:-start} in
  start) start ;;
  stop) shift; stop "$@" ;;
  status) status ;;
  *) echo "usage: $0 start | stop [--purge] | status" >&2; exit 2 ;;
esac
