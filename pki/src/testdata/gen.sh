#!/bin/sh
# Regenerates the checked-in test inputs that rcgen (ring backend) cannot make itself.
# rsa2048.csr: a CSR with an RSA key asking for CN=evil, OU=swarm-manager; sign_csr must refuse it.
set -eu
cd "$(dirname "$0")"
key=$(mktemp)
openssl req -new -newkey rsa:2048 -nodes -keyout "$key" -subj "/CN=evil/OU=swarm-manager" -out rsa2048.csr
rm -f "$key"
