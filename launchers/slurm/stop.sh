#!/usr/bin/env bash
# Stop the single-node SLURM that start.sh started, by its PID files, in reverse order
# (slurmd, slurmctld, slurmdbd, MariaDB, munged), and wait until each has exited.
# The state dir stays (jobs' accounting, keys, logs) unless --purge is given.
#
#   launchers/slurm/stop.sh [--purge]
set -euo pipefail

STATE=${REFTLAB_SLURM_DIR:-/tmp/reftlab-slurm}
RUN=$STATE/run
purge=0
case ${1:-} in
    --purge) purge=1 ;;
    "") ;;
    *)
        echo "usage: $0 [--purge]" >&2
        exit 2
        ;;
esac

# alive PID: the process exists and is not a zombie (a container's PID 1 may reap late).
alive() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# stop_daemon NAME: SIGTERM the PID in $RUN/NAME.pid, wait up to 30 s, then SIGKILL.
stop_daemon() {
    local name=$1 pidfile=$RUN/$1.pid pid
    [[ -s $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if ! alive "$pid"; then
        rm -f "$pidfile"
        return 0
    fi
    # A PID file can outlive its daemon and name a recycled PID: only stop our own binary.
    if ! grep -q "$name" "/proc/$pid/comm" 2>/dev/null; then
        echo "stop.sh: $pidfile names PID $pid, which is not $name; leaving it" >&2
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    local deadline=$((SECONDS + 30))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.1
    done
    if alive "$pid"; then
        echo "stop.sh: $name (PID $pid) ignored SIGTERM for 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "stop.sh: stopped $name"
}

# Jobs still running would outlive slurmd as orphan slurmstepd processes: cancel them first.
if [[ -s $RUN/slurmctld.pid ]] && alive "$(cat "$RUN/slurmctld.pid")"; then
    jobs=$(SLURM_CONF=$STATE/etc/slurm.conf squeue -h -o %i 2>/dev/null || true)
    if [[ -n $jobs ]]; then
        # shellcheck disable=SC2086 # one argument per job id
        SLURM_CONF=$STATE/etc/slurm.conf scancel $jobs || true
        echo "stop.sh: cancelled jobs $(tr '\n' ' ' <<<"$jobs")"
    fi
fi

for name in slurmd slurmctld slurmdbd mariadb munged; do
    stop_daemon "$name"
done

if [[ $purge -eq 1 ]]; then
    etc=/etc/slurm/slurm.conf
    if [[ -L $etc && $(readlink "$etc") == "$STATE/etc/slurm.conf" ]]; then
        rm -f "$etc"
    fi
    rm -rf "$STATE"
    echo "stop.sh: removed $STATE"
fi
