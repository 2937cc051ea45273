#!/usr/bin/env bash
# Sets up a fresh Debian machine for nix2aci: the tools it drives and tests against, Nix made
# usable offline as root, the npm dependencies, the CLI (dist/) and the fixture packages.
# Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  nix-bin        # Nix 2.8: nix-env, nix-store, nix-build
  nix-setup-systemd  # /etc/nix/nix.conf (sandbox off, as Debian's Nix needs) and the nixbld users
  appc-spec      # actool, the appc reference validator
  bubblewrap     # runs images in tests the way rkt's fly stage1 does
  busybox-static etcd-server python3-minimal libpython3.11-stdlib patchelf gcc libc6-dev  # fixture sources
  pigz xz-utils bzip2  # compressors for fat images
  gnupg          # image signing
  systemd        # systemd-analyze verify: the tests check the units nix2aci unit prints
  openssh-server # sshd on loopback in a test's own network namespace: the tests copy images over real SSH
  time           # GNU time: peak memory in npm run bench
)
if [ "$(id -u)" != 0 ]; then echo "setup.sh: run as root (it installs Debian packages)" >&2; exit 1; fi
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# No binary cache can be reached here: without this every build waits on cache.nixos.org. The
# fixtures build with the host's /bin/sh and tools, which Nix's sandbox would hide.
mkdir -p /etc/nix
for setting in 'substituters =' 'sandbox = false'; do
  grep -q "^${setting%% *}" /etc/nix/nix.conf 2>/dev/null || printf '# nix2aci setup\n%s\n' "$setting" >> /etc/nix/nix.conf
done

npm ci --no-audit --no-fund
npm run build  # dist/: no install script builds it, since one would run (and warn) wherever the package is installed
nix-build fixtures --no-out-link >/dev/null
echo "setup.sh: ready (Nix $(nix-env --version | awk '{print $NF}'), $(actool version 2>&1 | head -1))"
