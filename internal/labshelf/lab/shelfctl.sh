#!/bin/bash
# shelfctl.sh CMD [CMD...] -- send ipmi_sim_cmd(5) commands to the running
# simulator's console (TCP, loopback only) and print its replies.
# Examples:
#   ./shelfctl.sh "sensor_set_bit_clr_rest 0x82 0 0 2 1"   # blade B1 -> M2
#   ./shelfctl.sh "sensor_set_value 0x86 0 2 97 1"         # B3 CPU temp 97 C (+event)
#   ./shelfctl.sh "sel_add 0x20 0x02 0 0 0 0 0x20 0 4 0x01 0x01 0x01 0x5a 0x50 0x46"
# Never send "quit": it stops the whole simulator.
# Replies are collected for SHELFCTL_WAIT seconds (default 0.3) after the
# last command. Do not wait "until the console is quiet": ipmi_sim copies its
# session log to every console, so under IPMI load it is never quiet.
HOST=${SHELF_CONSOLE_HOST:?SHELF_CONSOLE_HOST not set}
PORT=${SHELF_CONSOLE_PORT:?SHELF_CONSOLE_PORT not set}
WAIT=${SHELFCTL_WAIT:-0.3}
exec 3<>"/dev/tcp/$HOST/$PORT" || exit 1
for c in "$@"; do
    printf '%s\n' "$c" >&3
done
sec=${WAIT%.*}; frac=${WAIT#*.}; [ "$frac" = "$WAIT" ] && frac=0
frac=$(printf '%-9s' "$frac" | tr ' ' 0)
end=$(( $(date +%s%N) + ${sec:-0} * 1000000000 + 10#$frac ))
out=""
while :; do
    rem=$(( end - $(date +%s%N) ))
    [ "$rem" -le 0 ] && break
    IFS= read -r -t "$(printf '%d.%09d' $((rem / 1000000000)) $((rem % 1000000000)))" -u 3 line || break
    out+="$line"$'\n'
done
exec 3>&-
# drop telnet negotiation bytes, prompts, echoed commands and session log chatter
printf '%s' "$out" | LC_ALL=C tr -cd '\11\12\40-\176' | sed -e 's/^\(> \)*//' -e '/^$/d' |
    grep -vxF -f <(printf '%s\n' "$@") |
    grep -vE '^(Activate session|Session closed|Closed due| channel=| rq_lun=| [0-9a-f]{2}( [0-9a-f]{2})*$)'
exit 0
