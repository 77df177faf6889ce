#!/usr/bin/env bash
# Installs what the build and tests need on a fresh machine (sourced by tests/run.sh and the demo).
# Root installs missing Debian packages; rustup adds the components. Idempotent and quiet when done.
need_apt=()
command -v cc >/dev/null 2>&1 || need_apt+=(gcc libc6-dev)
command -v setpriv >/dev/null 2>&1 || need_apt+=(util-linux)
command -v pgrep >/dev/null 2>&1 || need_apt+=(procps)
command -v chronyd >/dev/null 2>&1 || [ -x /usr/sbin/chronyd ] || need_apt+=(chrony)
# promtool checks `nicclock metrics` (userspace/tests/metrics.rs); lintian the Debian package.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
command -v dpkg-deb >/dev/null 2>&1 || need_apt+=(dpkg)
command -v adduser >/dev/null 2>&1 || [ -x /usr/sbin/adduser ] || need_apt+=(adduser) # the .deb's postinst
if ((${#need_apt[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing ${need_apt[*]}; install them (apt-get install ${need_apt[*]}) or run as root" >&2
    exit 1
  fi
  # Installing must not start services (chrony's would steer this machine's clock, prometheus'
  # would listen): a temporary policy-rc.d refuses, unless the machine already has one.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && own_policy=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
if command -v rustup >/dev/null 2>&1; then
  rustup component add clippy rustfmt >/dev/null 2>&1 || true
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found: install Rust (rustup) first" >&2; exit 1; }
