#!/usr/bin/env bash
# install-peers.sh: install the Debian packages whose programs the tests use
# as real protocol peers (ipmi_sim and sdrcomp from openipmi, ipmitool,
# FreeIPMI's ipmi-sensors, net-snmp tools). Does nothing when they are all
# present; uses sudo when not run as root.
set -euo pipefail
need=()
command -v ipmi_sim     >/dev/null || need+=(openipmi)
command -v ipmitool     >/dev/null || need+=(ipmitool)
command -v ipmi-sensors >/dev/null || need+=(freeipmi-tools)
command -v snmptrap     >/dev/null || need+=(snmp)
command -v hyperfine    >/dev/null || need+=(hyperfine)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing test peers: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${need[@]}"
