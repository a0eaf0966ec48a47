#!/usr/bin/env bash
# A multi-node opt-java job through Open MPI's mpirun (plain SSH between the hosts): one process per GPU.
#   scripts/launch/mpirun.sh host1:8,host2:8                       # checks that every process meets
#   scripts/launch/mpirun.sh host1:8,host2:8 scripts/opt <command> # your own opt command line instead
#   e.g. scripts/launch/mpirun.sh node1:8,node2:8 scripts/opt generate --model /models/opt-66b --device cuda \
#          --multi-process --pipeline-parallel 2 --tensor-parallel 8 --prompt "Hello"
# Open MPI sets OMPI_COMM_WORLD_RANK/_SIZE/_LOCAL_RANK; this script adds MASTER_ADDR (the first host) and
# MASTER_PORT for the rendezvous. Every process runs the same command; rank 0 prints the results. The
# --multi-process path has run with CPU processes on one machine (tests), not yet on several GPUs or machines.
set -euo pipefail
hosts="${1:?usage: $0 host1:slots,host2:slots [command ...]}"
shift
first="${hosts%%,*}"
export MASTER_ADDR="${MASTER_ADDR:-${first%%:*}}"
export MASTER_PORT="${MASTER_PORT:-29500}"
slots=0
IFS=',' read -ra list <<< "$hosts"
for h in "${list[@]}"; do slots=$(( slots + ${h##*:} )); done
if [ $# -eq 0 ]; then set -- scripts/opt rendezvous --timeout 120; fi
exec mpirun -np "$slots" -H "$hosts" -x MASTER_ADDR -x MASTER_PORT -x PATH -x JAVA_HOME "$@"
