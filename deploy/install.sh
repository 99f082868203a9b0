#!/bin/sh
# Installs Causeway's binaries, systemd units and example probe config on this host (as root),
# or under a staging directory (--root). Safe to run again: it makes only what is missing,
# replaces the binaries and units, and never overwrites /etc/causeway/probe.toml.
#
#   deploy/install.sh [--bin-dir DIR] [--probe-only | --collector-only] [--root DIR] [--dry-run]
#
# Then follow the steps it prints (tokens, the config, systemctl enable --now). Change the
# units with drop-ins (systemctl edit causeway-probe): a reinstall replaces the unit files.
set -eu

usage() {
	cat <<'EOF'
usage: deploy/install.sh [options]

  --bin-dir DIR     where the built binaries are (default: target/release of this repository;
                    build them with `cargo build --release --locked`)
  --probe-only      install the probe only (causeway-probe, its unit, the example config)
  --collector-only  install the collector only (causeway-collector, probectl, its unit)
  --root DIR        install under DIR instead of / (staging, packaging, tests); users are not
                    created and file owners are not set there
  --dry-run         print what would be done, change nothing
  -h, --help        this text

Creates the system users causeway-probe and causeway-collector, copies the binaries to
/usr/local/bin, the units to /etc/systemd/system, and deploy/probe.toml.example to
/etc/causeway/probe.toml when that file does not exist yet (mode 0640, group causeway-probe).
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
bin_dir="$repo/target/release"
root=""
dry_run=0
want_probe=1
want_collector=1

while [ $# -gt 0 ]; do
	case "$1" in
	--bin-dir)
		[ $# -ge 2 ] || { echo "install.sh: --bin-dir needs a directory" >&2; exit 2; }
		bin_dir=$2
		shift 2
		;;
	--bin-dir=*) bin_dir=${1#*=}; shift ;;
	--root)
		[ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }
		root=$2
		shift 2
		;;
	--root=*) root=${1#*=}; shift ;;
	--probe-only) want_collector=0; shift ;;
	--collector-only) want_probe=0; shift ;;
	--dry-run) dry_run=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*)
		echo "install.sh: unknown argument: $1 (see --help)" >&2
		exit 2
		;;
	esac
done

if [ "$want_probe" -eq 0 ] && [ "$want_collector" -eq 0 ]; then
	echo "install.sh: --probe-only and --collector-only together install nothing; give one" >&2
	exit 2
fi
if [ -n "$root" ]; then
	case "$root" in
	/*) ;;
	*) root="$(pwd)/$root" ;;
	esac
	root=${root%/}
fi
if [ -z "$root" ] && [ "$dry_run" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
	echo "install.sh: run as root (or try --dry-run, or --root DIR to stage the files)" >&2
	exit 1
fi

# The arguments as a shell would read them back (quoted where needed).
quoted() {
	out=""
	for a in "$@"; do
		case "$a" in
		"" | *[!A-Za-z0-9_./:=@%+-]*)
			a="'$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'"
			;;
		esac
		out="$out${out:+ }$a"
	done
	printf '%s\n' "$out"
}

# Prints a command, and runs it unless --dry-run.
run() {
	if [ "$dry_run" -eq 1 ]; then
		echo "would run: $(quoted "$@")"
	else
		echo "+ $(quoted "$@")"
		"$@"
	fi
}

note() {
	echo "install.sh: $*"
}

need_file() {
	if [ ! -f "$1" ]; then
		echo "install.sh: $1 is missing${2:+; $2}" >&2
		exit 1
	fi
}

# Checks everything before changing anything.
binaries=""
[ "$want_probe" -eq 1 ] && binaries="causeway-probe"
[ "$want_collector" -eq 1 ] && binaries="$binaries causeway-collector probectl"
for b in $binaries; do
	need_file "$bin_dir/$b" "build it with \`cargo build --release --locked\`, or give --bin-dir"
done
[ "$want_probe" -eq 1 ] && need_file "$here/systemd/causeway-probe.service"
[ "$want_probe" -eq 1 ] && need_file "$here/probe.toml.example"
[ "$want_collector" -eq 1 ] && need_file "$here/systemd/causeway-collector.service"

make_user() {
	if [ -n "$root" ]; then
		note "user $1: not created under --root (create it on the target host)"
	elif getent passwd "$1" >/dev/null 2>&1; then
		note "user $1: exists"
	else
		run useradd --system --user-group --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin --comment "Causeway ${1#causeway-}" "$1"
	fi
}

make_dir() { # mode dir [group]
	if [ -d "$root$2" ]; then
		return 0
	fi
	if [ -n "$root" ] || [ -z "${3:-}" ]; then
		run install -d -m "$1" "$root$2"
	else
		run install -d -m "$1" -o root -g "$3" "$root$2"
	fi
}

copy() { # mode source destination
	run install -m "$1" "$2" "$root$3"
}

[ "$want_probe" -eq 1 ] && make_user causeway-probe
[ "$want_collector" -eq 1 ] && make_user causeway-collector

make_dir 0755 /usr/local/bin
make_dir 0755 /etc/systemd/system
for b in $binaries; do
	copy 0755 "$bin_dir/$b" "/usr/local/bin/$b"
done
[ "$want_probe" -eq 1 ] && copy 0644 "$here/systemd/causeway-probe.service" \
	/etc/systemd/system/causeway-probe.service
[ "$want_collector" -eq 1 ] && copy 0644 "$here/systemd/causeway-collector.service" \
	/etc/systemd/system/causeway-collector.service

if [ "$want_probe" -eq 1 ]; then
	config=/etc/causeway/probe.toml
	make_dir 0750 /etc/causeway causeway-probe
	if [ -e "$root$config" ]; then
		note "$config: exists, kept (the new example is $here/probe.toml.example)"
	elif [ -n "$root" ]; then
		run install -m 0640 "$here/probe.toml.example" "$root$config"
	else
		run install -m 0640 -o root -g causeway-probe "$here/probe.toml.example" "$config"
	fi
fi

[ "$dry_run" -eq 1 ] && note "dry run: nothing was changed"
[ -n "$root" ] && note "staged under $root"

echo
echo "Next steps:"
step=1
say() {
	echo "  $step. $*"
	step=$((step + 1))
}
if [ "$want_collector" -eq 1 ]; then
	say "Make the first account of the web page (it asks for a password), and a read token for
     probectl or Prometheus if you want one: a collector on a network address does not start
     without one (or --open, to let anyone read):
       runuser -u causeway-collector -- causeway-collector --db /var/lib/causeway/causeway.db user add <name> --role admin
       runuser -u causeway-collector -- causeway-collector --db /var/lib/causeway/causeway.db read-token add <what-for>"
	say "Start the collector (on 0.0.0.0:8750; to change it, \`systemctl edit causeway-collector\`
     and set Environment=CAUSEWAY_LISTEN=ADDR:PORT: drop-ins outlive a reinstall):
       systemctl daemon-reload && systemctl enable --now causeway-collector"
	say "Make a token for each server a probe runs on (shown once), as the service's user:
       runuser -u causeway-collector -- causeway-collector --db /var/lib/causeway/causeway.db token add <server>"
fi
if [ "$want_probe" -eq 1 ]; then
	say "Edit /etc/causeway/probe.toml: collector_url, token, the [[canary]] pages; then check it:
       causeway-probe check-config /etc/causeway/probe.toml"
	say "Start the probe:
       systemctl daemon-reload && systemctl enable --now causeway-probe"
fi
say "Watch them: systemctl status causeway-collector causeway-probe; journalctl -u 'causeway-*' -f"
