#!/usr/bin/env bash
# install-peers.sh: install the Debian packages whose programs the tests use
# as real protocol peers (ipmi_sim and sdrcomp from openipmi, ipmitool,
# FreeIPMI's ipmi-sensors, net-snmp's snmptrap and snmpd, fence-agents'
# metadata schema with xmllint, cryptsetup and loop devices for secure
# erase, iproute2 for veth pairs). Does nothing when they are all present;
# uses sudo when not run as root. The benchmarks also use hyperfine and
# openhpid with the ipmidirect plugin.
set -euo pipefail
need=()
command -v ipmi_sim     >/dev/null || need+=(openipmi)
command -v ipmitool     >/dev/null || need+=(ipmitool)
command -v ipmi-sensors >/dev/null || need+=(freeipmi-tools)
command -v snmptrap     >/dev/null || need+=(snmp)
command -v hyperfine    >/dev/null || need+=(hyperfine)
command -v snmpd        >/dev/null || need+=(snmpd)
command -v xmllint      >/dev/null || need+=(libxml2-utils)
[ -f /usr/share/cluster/relaxng/metadata.rng ] || need+=(fence-agents)
command -v cryptsetup   >/dev/null || need+=(cryptsetup-bin)
command -v mkfs.ext4    >/dev/null || need+=(e2fsprogs)
command -v losetup      >/dev/null || need+=(mount)
command -v ip           >/dev/null || need+=(iproute2)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v openhpid     >/dev/null || need+=(openhpid openhpi-clients openhpi-plugin-ipmidirect)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "installing test peers: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update
$sudo apt-get install -y --no-install-recommends "${need[@]}"
