#!/usr/bin/env bash
# Container entry point of both images: runs its arguments (Jetson image: python3 -m deploy.entrypoint, GPU image:
# make) and passes `docker stop` on to them, so that deploy/infer.py finalises a recording before it exits.
#
# `docker stop` sends SIGTERM to PID 1, then SIGKILL 10 s later. A command run as PID 1 gets no default signal
# actions, and make does not pass signals on to its recipes. So this script stays PID 1: it starts the command
# as a process group of its own, sends SIGTERM, SIGINT (Ctrl-C on `docker run -it`) and SIGHUP to that whole
# group, and exits with the command's status (143 after SIGTERM: see base/errors.py, which turns SIGTERM into
# a clean stop that closes the video writer and JSON file).
set -euo pipefail

if [ "$#" -eq 0 ]; then
    echo "entrypoint.sh: no command given (expected e.g. 'python3 -m deploy.entrypoint' or 'make help')" >&2
    exit 2
fi

# `bench --flags...` selects the engine benchmark in both images (python3 -m deploy.bench, through deploy.entrypoint):
# the Jetson image passes it to deploy.entrypoint already; the GPU image would hand the benchmark's flags to make, so
# `make bench --...` becomes the same command here (`make bench` alone, or with make variables, stays make's).
if [ "$1" = "make" ] && [ "${2-}" = "bench" ] && [ "$(printf %.1s "${3-}")" = "-" ]; then
    shift
    set -- python3 -m deploy.entrypoint "$@"
fi

# Job control: the command gets a process group of its own (make and everything it starts), and bash leaves
# its SIGINT alone (without job control, background commands start with SIGINT ignored).
set -m
"$@" &
child=$!

forward() {
    kill "-$1" -- "-$child" 2>/dev/null || true
}
for sig in TERM INT HUP; do
    # shellcheck disable=SC2064  # expand $sig now: each trap forwards its own signal
    trap "forward $sig" "$sig"
done

# `wait` returns early when a trapped signal arrives; keep waiting until the command has really ended.
while kill -0 "$child" 2>/dev/null; do
    wait "$child" || true
done
status=0
wait "$child" || status=$?
# Whatever it started may still be finishing its own shutdown (a recipe's Python after sh or make has gone):
# the container ends with this script, so wait for the whole group (orphans are this PID 1's to reap).
while kill -0 -- "-$child" 2>/dev/null; do
    sleep 0.1
done
exit "$status"
