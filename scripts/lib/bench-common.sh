# Shell helpers shared by the bench scripts (sourced, not run). They use two globals of the
# script that sources them: `child_pid` (set by run_child, for the script's cleanup trap) and
# `startup_wait_s` (how long a server may take to start; 60 s when unset).

# Stops process PID: SIGTERM, then SIGKILL if it is still there after 10 s.
stop_server() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    # Polling with kill -0 would not see the exit (an exited child stays a zombie until
    # waited for), so a watchdog kills it while we wait.
    (sleep 10 && kill -KILL "$pid" 2>/dev/null) &
    local watchdog=$!
    wait "$pid" 2>/dev/null || true
    kill "$watchdog" 2>/dev/null || true
    wait "$watchdog" 2>/dev/null || true
}

# Runs a command in the background and waits for it: unlike a foreground command, `wait` is
# interrupted by SIGINT/SIGTERM, so the caller's traps run at once.
run_child() {
    "$@" &
    child_pid=$!
    local status=0
    wait "$child_pid" || status=$?
    child_pid=""
    return "$status"
}

# Waits until FILE has a line matching PATTERN written by process PID; prints that line.
wait_for_line() {
    local pid=$1 file=$2 pattern=$3 line
    for _ in $(seq 1 $((${startup_wait_s:-60} * 10))); do
        line=$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)
        if [ -n "$line" ]; then
            echo "$line"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# Peak resident memory of process PID in KiB (0 once it is gone).
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
