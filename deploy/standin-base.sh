#!/bin/sh
# Builds a Debian bookworm image that stands in for python:3.11-slim-bookworm on hosts with no
# container registry (air-gapped builds): debootstrap from a Debian mirror, then import it.
#   deploy/standin-base.sh [IMAGE]     default: stock-lstm-base:bookworm
# ENGINE is the command that imports it (default podman; e.g. ENGINE="docker").
# Needs root (debootstrap) and DEBIAN_MIRROR (default deb.debian.org) reachable over HTTP.
set -eu
image="${1:-stock-lstm-base:bookworm}"
engine="${ENGINE:-podman}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror"
# The Dockerfile calls `python`, as the official image provides it.
ln -s /usr/bin/python3 "$root/usr/local/bin/python"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
# shellcheck disable=SC2086 # ENGINE may carry global options
tar --numeric-owner -C "$root" -c . | $engine import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$image"
