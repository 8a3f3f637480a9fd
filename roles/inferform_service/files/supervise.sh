#!/bin/sh
# Start, stop or look at the inference server as a supervised background process: the service role's mode for
# targets where systemd is not PID 1 (containers, macOS, CI). POSIX sh; Linux (/proc) and macOS (ps).
#
#   supervise.sh status STATE_DIR PORT              prints "running PID" or "stopped"
#   supervise.sh start  STATE_DIR PORT              prints "running PID" (already up) or "started PID"
#   supervise.sh stop   STATE_DIR PORT [TIMEOUT]    prints "stopped PID", "cleaned" (stale pid file) or "absent"
#
# STATE_DIR holds front.sh (the front, front.py, which runs the engine of the serving configuration) and receives
# server.pid (the front's) and front.log.
# A pid counts as ours only while it is alive and its command line carries "--port PORT": after a reboot the pid
# file may name an unrelated process, which must never be reported as the server, let alone killed.
set -u
cmd=${1:?usage: supervise.sh status|start|stop STATE_DIR PORT [TIMEOUT]}
dir=${2:?state dir missing}
port=${3:?port missing}
timeout=${4:-30}
pidfile="$dir/server.pid"
log="$dir/front.log"

state_of() {  # one-letter process state (R, S, Z, ...), empty when there is no such process
    if [ -r "/proc/$1/status" ]; then
        sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null
    elif [ ! -d /proc/self ]; then
        ps -p "$1" -o stat= 2>/dev/null | cut -c1
    fi
}

alive() {  # a zombie is dead: kill -0 alone would call it alive until its parent reaps it
    s=$(state_of "$1")
    [ -n "$s" ] && [ "$s" != Z ]
}

args_of() {
    if [ -r "/proc/$1/cmdline" ]; then tr '\000' ' ' <"/proc/$1/cmdline"; else ps -p "$1" -o args= 2>/dev/null; fi
}

ours() {
    alive "$1" || return 1
    case " $(args_of "$1") " in *" --port $port "*) return 0 ;; esac
    return 1
}

running_pid() {
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null)
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    ours "$pid" && echo "$pid"
}

case $cmd in
status)
    if pid=$(running_pid); then echo "running $pid"; else echo stopped; fi
    ;;
start)
    if pid=$(running_pid); then echo "running $pid"; exit 0; fi
    cd "$dir" || exit 1
    [ -f "$log" ] && mv -f "$log" "$log.1"  # the log holds this run only; the previous one is kept beside it
    printf '==== inferform: starting %s at %s\n' "$dir/front.sh" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
    # setsid (Linux) puts the server in its own session, so closing an SSH connection cannot signal it; without
    # job control the child is no group leader, so setsid execs in place and $! stays the server's pid.
    if command -v setsid >/dev/null 2>&1; then
        nohup setsid ./front.sh >>"$log" 2>&1 </dev/null &
    else
        nohup ./front.sh >>"$log" 2>&1 </dev/null &
    fi
    pid=$!
    echo "$pid" >"$pidfile"
    # A server that dies at once (bad flag, missing file or library) fails here, not after the health timeout.
    i=0
    while [ $i -lt 10 ]; do
        sleep 0.2
        if ! alive "$pid"; then
            wait "$pid"
            echo "the server exited at once with status $?; see $log" >&2
            rm -f "$pidfile"
            exit 1
        fi
        i=$((i + 1))
    done
    echo "started $pid"
    ;;
stop)
    if ! pid=$(running_pid); then
        if [ -f "$pidfile" ]; then rm -f "$pidfile"; echo cleaned; else echo absent; fi
        exit 0
    fi
    kill -TERM "$pid" 2>/dev/null
    i=0
    while ours "$pid" && [ $i -lt $((timeout * 5)) ]; do
        sleep 0.2
        i=$((i + 1))
    done
    if ours "$pid"; then
        echo "the server (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL" >>"$log"
        kill -KILL "$pid" 2>/dev/null
        sleep 0.5
    fi
    rm -f "$pidfile"
    echo "stopped $pid"
    ;;
*)
    echo "unknown command $cmd: use status, start or stop" >&2
    exit 2
    ;;
esac
