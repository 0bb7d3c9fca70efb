#!/bin/sh
# nginx wants its DNS server as an address: take the container's own (Docker's embedded DNS, or
# podman's aardvark-dns on the network gateway), so `api` resolves to every replica on both.
set -eu
server="$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf)"
case "$server" in *:*) server="[$server]" ;; esac
printf 'resolver %s valid=5s ipv6=off;\n' "$server" > /tmp/resolver.conf
exec nginx -e stderr -c /etc/nginx/balancer.conf -g 'daemon off;'
