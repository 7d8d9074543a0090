#!/bin/bash
# regen.sh [LABDIR] -- rebuild the generated lab artefacts under LABDIR
# (default: lab/ next to this script) from their sources.
# Needs: sdrcomp (Debian package openipmi) and python3. The artefacts are
# committed, so tests need neither tool at run time; run this after editing
# lab/sdr/*.sdrs, lab/gen-sdr-emu.py or lab/fru/gen-fru.py, then commit lab/.
#
#   lab/fru/*.bin              FRU images (gen-fru.py; fixed date, TZ=UTC)
#   lab/gen/<mc>.emu           device_sdr_add commands for each IPMC
#   lab/gen/<mc>-init.emu      sensor init commands for each IPMC
#   lab/gen/sdr.20.main.full   ShMC main SDR repository, every MC's sensors
#   lab/gen/sdr.20.main.own    ShMC main SDR repository, ShMC sensors + IPMC locators
set -euo pipefail
L=$(cd "${1:-$(dirname "$0")/lab}" && pwd)
G=$L/gen
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$G"
TZ=UTC python3 "$L/fru/gen-fru.py" "$L/fru" >/dev/null
for f in blade-82 blade-84 blade-86 blade-88 fantray; do
    (cd "$L/sdr" && sdrcomp -8 -r -o "$tmp/$f.bin" "$f.sdrs")
done
mv -f "$tmp/fantray.bin" "$tmp/fantray-72.bin"
for f in blade-82 blade-84 blade-86 blade-88 fantray-72; do
    a=0x${f##*-}
    # the header line names the input file; keep it stable (no temp path)
    python3 "$L/gen-sdr-emu.py" device "$a" "$tmp/$f.bin" 2>/dev/null | sed "1s#$tmp/##" > "$G/$f.emu"
    python3 "$L/gen-sdr-emu.py" init "$a" "$tmp/$f.bin" 2>/dev/null | sed "1s#$tmp/##" > "$G/$f-init.emu"
done
# sdrcomp stamps the repository with the compile time (last_add_time); the
# committed files carry 0 and labshelf puts the shelf's start time there.
(cd "$L/sdr" && sdrcomp -8 -o "$tmp/full" shelf.sdrs)
(cd "$L/sdr" && sdrcomp -8 -o "$tmp/own" shelf-own.sdrs)
sed '1s/^last_add_time:i:[0-9]*$/last_add_time:i:0/' "$tmp/full" > "$G/sdr.20.main.full"
sed '1s/^last_add_time:i:[0-9]*$/last_add_time:i:0/' "$tmp/own" > "$G/sdr.20.main.own"
echo "regenerated $G and $L/fru"
