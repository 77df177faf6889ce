#!/bin/sh
# packaging/docs.sh BINDIR OUTDIR: man pages and shell completions of nicclockd and nicclock,
# written by the binaries themselves from their clap definitions (nicclock-clidoc), into
# OUTDIR/man and OUTDIR/completions. Used by udev/install.sh and packaging/deb/build.sh.
set -eu
bin=$1 out=$2
mkdir -p "$out"
NICCLOCK_GENERATE_DOCS=$out "$bin/nicclockd" >/dev/null
NICCLOCK_GENERATE_DOCS=$out "$bin/nicclock" >/dev/null
