#!/bin/bash
# blade.sh <mc-hex> -- stand-in for the payload (OS) of one shelf FRU.
# ipmi_sim starts it through `startcmd` (chassis power on / startnow) and
# SIGTERMs it on chassis power off, so "power state" == "this process lives".
# For blade IPMCs it also walks the FRU hot-swap sensor through the PICMG
# M-states via the emulator console: start M2->M3->M4, stop M6->M1.
#
# Environment (inherited from the harness through ipmi_sim):
#   LAB_RUN              runtime directory (pid, log and heartbeat files;
#                        the harness creates sel-clock-set there once the
#                        SEL time is set)
#   SHELF_CONSOLE_HOST, SHELF_CONSOLE_PORT  the emulator console (shelfctl.sh)
#   LAB_HS_SYNC=0        do not touch the hot-swap sensor at all
#   LAB_HS_EVENTS=picmg  (default) set the sensor silently and add a
#                        PICMG 3.0 conformant hot-swap event to the ShMC SEL
#                        (event data 1 = 0xA0|new state, data 2 =
#                        cause<<4|previous state, data 3 = FRU id 0)
#   LAB_HS_EVENTS=sim    let ipmi_sim generate the event itself; its event
#                        data 2/3 are 0xff (no previous state, no FRU id),
#                        which openhpi/ipmidirect ignores ("FRU 255").
MC=$1
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${LAB_RUN:-$HERE/../run}
LOG=$RUN/blade-$MC.log
mkdir -p "$RUN"
PREV=1                      # shelf.emu leaves every blade in M1
log() { echo "$(date +%s.%N) [$$] $*" >> "$LOG"; }
hs() {   # hs <tries> <M-state>:<cause> ...
    [ "$MC" = 20 ] && return 0
    [ "${LAB_HS_SYNC:-1}" = 1 ] || return 0
    local n=$1 sc s c cmds; shift
    for sc in "$@"; do
        s=${sc%%:*}; c=${sc##*:}
        if [ "${LAB_HS_EVENTS:-picmg}" = picmg ]; then
            cmds=("sensor_set_bit_clr_rest 0x$MC 0 0 $s 0"
                  "$(printf 'sel_add 0x20 0x02 0 0 0 0 0x%s 0x00 0x04 0xf0 0x00 0x6f 0x%02x 0x%02x 0x00' \
                       "$MC" $((0xa0 | s)) $(((c << 4) | PREV)))")
        else
            cmds=("sensor_set_bit_clr_rest 0x$MC 0 0 $s 1")
        fi
        local ok=0
        for _ in $(seq "$n"); do   # the console comes up after shelf.emu ran
            SHELFCTL_WAIT=0.05 "$HERE/shelfctl.sh" "${cmds[@]}" >/dev/null 2>&1 && { ok=1; break; }
            sleep 0.1
        done
        if [ $ok = 1 ]; then
            log "hot-swap M$PREV -> M$s (cause $c)"
            PREV=$s
        else
            log "hot-swap to M$s failed: console unreachable"
            return 1
        fi
    done
}
stop() {
    log "SIGTERM: payload power off"
    hs 1 6:1 1:0     # single try: at lab shutdown the console is already gone
    rm -f "$RUN/blade-$MC.pid"
    exit 0
}
trap stop TERM INT
echo $$ > "$RUN/blade-$MC.pid"
log "payload power on"
# At shelf start, wait (up to 20 s) until the harness has set the SEL clock,
# so that no hot-swap event carries a "Pre-Init" time stamp.
for _ in $(seq 400); do [ -e "$RUN/sel-clock-set" ] && break; sleep 0.05; done
# M2 insertion (cause 3 = FRU programmatic action), M3 activation commanded
# by the shelf manager (cause 1), M4 normal completion (cause 0)
hs 50 2:3 3:1 4:0
# ipmi_sim does not stop its startcmd children when it exits: leave with it.
SIM=$PPID
while kill -0 "$SIM" 2>/dev/null; do
    date +%s > "$RUN/blade-$MC.heartbeat"
    sleep 1 & wait $!
done
