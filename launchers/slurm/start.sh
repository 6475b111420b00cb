#!/usr/bin/env bash
# Start a single-node SLURM with accounting on this machine, without systemd (see README.md):
# munged -> MariaDB -> slurmdbd -> (cluster registered) -> slurmctld -> slurmd.
# Everything (configs, keys, database, spool, logs, PID files) lives in one state dir,
# $REFTLAB_SLURM_DIR (default /tmp/reftlab-slurm). Re-runnable: daemons already running are
# left alone. Needs root and the packages from install.sh.
set -euo pipefail

STATE=${REFTLAB_SLURM_DIR:-/tmp/reftlab-slurm}
CLUSTER=${REFTLAB_SLURM_CLUSTER:-reftlab}
PARTITION=debug
# MariaDB listens on loopback TCP only: slurmdbd's StorageHost/StoragePort has no socket option.
DB_PORT=${REFTLAB_SLURM_DB_PORT:-6820}
NODE=$(hostname -s)

ETC=$STATE/etc
RUN=$STATE/run
LOG=$STATE/log
MUNGE_SOCKET=$STATE/munge/munge.socket.2
DB_SOCKET=$RUN/mariadb.sock
export SLURM_CONF=$ETC/slurm.conf

say() { echo "start.sh: $*"; }
die() {
    echo "start.sh: error: $*" >&2
    exit 1
}

# is_running NAME: $RUN/NAME.pid names a live process of that program. Zombies do not count
# (a container's PID 1 may reap exited daemons late), nor do PIDs recycled since a reboot.
is_running() {
    local pidfile=$RUN/$1.pid pid state
    [[ -s $pidfile ]] || return 1
    pid=$(cat "$pidfile")
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]] && grep -q "$1" "/proc/$pid/comm"
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND (a program or a function of this
# script) every 0.2 s until it succeeds; SLURM clients give up on their own (MessageTimeout).
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    while ((SECONDS < deadline)); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    die "$what did not come up within ${seconds}s; see the logs in $LOG"
}

check_prerequisites() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (root is the SlurmUser of this cluster)"
    local cmd
    for cmd in munged mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd sacctmgr \
        sinfo sacct; do
        command -v "$cmd" >/dev/null || die "'$cmd' not found; run launchers/slurm/install.sh"
    done
}

all_running() {
    local name
    for name in munged mariadb slurmdbd slurmctld slurmd; do
        is_running "$name" || return 1
    done
}

# Real size of this machine: topology from `slurmd -C`, memory 5% below the total so that
# slurmd never reports less than configured (which would drain the node).
node_line() {
    local hw mem
    hw=$(slurmd -C | head -n 1)
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
    hw=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ RealMemory=[0-9]*//' <<<"$hw")
    echo "NodeName=$NODE NodeAddr=127.0.0.1 $hw RealMemory=$((mem * 95 / 100)) State=UNKNOWN"
}

write_slurm_conf() {
    cat >"$ETC/slurm.conf.new" <<EOF
# Written by launchers/slurm/start.sh: one node, one partition, accounting via slurmdbd.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
# Root runs every daemon: a local trial cluster needs no dedicated slurm user.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s).
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
# Containers have no usable cgroups: track processes through /proc, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, a job that asks for no memory would take the whole node.
DefMemPerCPU=1024
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
# For slurmdbd this is not a password but the munge socket that clients (sacct) use to reach it.
AccountingStoragePass=$MUNGE_SOCKET
JobCompType=jobcomp/none
# submitit requeues checkpointable jobs on timeout and preemption.
JobRequeue=1
# Fast turnaround for tests: start jobs as soon as they are submitted or resources free up
# (defaults: 3 s batch delay, 60 s main and 30 s backfill intervals), end a job exactly at its
# limit, and SIGKILL 2 s after SIGTERM (default 30 s).
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,sched_min_interval=0,bf_interval=1
OverTimeLimit=0
KillWait=2
InactiveLimit=0
MinJobAge=60
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=30
ReturnToService=2
$(node_line)
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$ETC/slurm.conf.new" "$ETC/slurm.conf"
}

write_slurmdbd_conf() {
    # slurmdbd refuses a config that others can read (it holds the database password).
    (
        umask 077
        cat >"$ETC/slurmdbd.conf" <<EOF
# Written by launchers/slurm/start.sh.
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$(cat "$ETC/db_password")
StorageLoc=slurm_acct_db
EOF
    )
    chown root:root "$ETC/slurmdbd.conf"
    chmod 600 "$ETC/slurmdbd.conf"
}

start_munged() {
    if is_running munged; then
        return
    fi
    mkdir -p "$STATE/munge"
    # Clients need to traverse the dir to reach the socket; only root reads the key.
    chmod 711 "$STATE/munge"
    if [[ ! -s $STATE/munge/munge.key ]]; then
        (umask 077 && head -c 1024 /dev/urandom >"$STATE/munge/munge.key")
    fi
    chmod 600 "$STATE/munge/munge.key"
    # --force: munged runs as root here, and /tmp above the state dir is world-writable.
    munged --force --key-file="$STATE/munge/munge.key" --socket="$MUNGE_SOCKET" \
        --pid-file="$RUN/munged.pid" --log-file="$LOG/munged.log" \
        --seed-file="$STATE/munge/munged.seed"
    wait_for 10 munged test -S "$MUNGE_SOCKET"
}

db() {
    mariadb --no-defaults --user=root --socket="$DB_SOCKET" "$@"
}

start_mariadb() {
    if ! is_running mariadb; then
        if [[ ! -d $STATE/mariadb/mysql ]]; then
            mariadb-install-db --no-defaults --user=root --datadir="$STATE/mariadb" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$LOG/mariadb-install.log" 2>&1 ||
                die "mariadb-install-db failed; see $LOG/mariadb-install.log"
        fi
        # setsid: mariadbd does not daemonise itself and must outlive this shell. The InnoDB
        # sizes are the ones slurmdbd checks for (it logs an error for smaller ones).
        setsid mariadbd --no-defaults --user=root --datadir="$STATE/mariadb" \
            --socket="$DB_SOCKET" --pid-file="$RUN/mariadb.pid" \
            --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
            --log-error="$LOG/mariadb.log" \
            --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
            </dev/null >/dev/null 2>&1 &
        wait_for 60 MariaDB db -e "SELECT 1"
    fi
    local password
    password=$(cat "$ETC/db_password")
    db <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
EOF
}

start_slurmdbd() {
    if ! is_running slurmdbd; then
        slurmdbd
    fi
    wait_for 30 slurmdbd sacctmgr -n -P show cluster
}

register_cluster() {
    # Adding a cluster also creates its `root` account and root's association.
    if [[ -z $(sacctmgr -n -P show cluster "$CLUSTER" format=cluster) ]]; then
        sacctmgr -i -Q add cluster "$CLUSTER" >/dev/null
    fi
}

node_idle() {
    [[ $(sinfo -h -n "$NODE" -p "$PARTITION" -o '%T') == idle* ]]
}

start_slurm() {
    if ! is_running slurmctld; then
        slurmctld
    fi
    wait_for 30 slurmctld scontrol ping
    if ! is_running slurmd; then
        slurmd
    fi
    wait_for 60 "node $NODE (idle)" node_idle
    wait_for 30 "sacct" sacct -n -X -S now-1minutes
}

print_status() {
    local cpus mem
    cpus=$(sinfo -h -n "$NODE" -o '%c')
    mem=$(sinfo -h -n "$NODE" -o '%m')
    echo "reftlab SLURM: $1: cluster $CLUSTER, node $NODE ($cpus CPUs, ${mem} MB)," \
        "partition $PARTITION, state $STATE, SLURM_CONF=$SLURM_CONF"
}

# Plain `sinfo`/`sbatch` (and submitit, which calls them) read /etc/slurm/slurm.conf when
# SLURM_CONF is unset; point it at ours unless another cluster's config is there.
link_etc_conf() {
    local etc=/etc/slurm/slurm.conf
    if [[ -L $etc && $(readlink "$etc") == */etc/slurm.conf ]] || [[ ! -e $etc && ! -L $etc ]]; then
        mkdir -p /etc/slurm
        ln -sfn "$SLURM_CONF" "$etc"
    else
        say "$etc belongs to another cluster; export SLURM_CONF=$SLURM_CONF to use this one"
    fi
}

main() {
    check_prerequisites
    if all_running; then
        print_status "already running"
        exit 0
    fi
    mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/ctld" "$STATE/slurmd"
    if [[ ! -s $ETC/db_password ]]; then
        (umask 077 && head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$ETC/db_password")
    fi
    write_slurm_conf
    write_slurmdbd_conf
    link_etc_conf
    start_munged
    start_mariadb
    start_slurmdbd
    register_cluster
    start_slurm
    print_status "up"
}

main "$@"
