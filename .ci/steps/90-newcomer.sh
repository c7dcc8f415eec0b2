#!/usr/bin/env bash
# A newcomer's first hour: fresh Debian 12 (Python 3.11) and Debian 13 (Python 3.13) roots made
# with mmdebstrap, holding only Debian's python3, its venv and pip modules, git and CA
# certificates (no `python` command, PEP 668 in force). The commit is cloned into each, and the
# README's two quick-start commands, read from README.md by .ci/quickstart.sh, run exactly as
# written: both by an ordinary user with umask 022 and a clean environment on both roots; by root,
# the first one on Debian 13 (root's test run is .ci/run's own first step, on this machine: a full
# suite more in a root would cost CI ~10 minutes). Everything it mounts and makes is removed on exit.
#
# Environment: NEWCOMER_SUITES (default "bookworm trixie"), NEWCOMER_ROOT_SUITES (where root runs
# them too; default "trixie"), NEWCOMER_ROOT_COMMANDS (which of the two root runs there; default
# "1"), DEBIAN_MIRROR (default http://deb.debian.org/debian),
# NEWCOMER_WORK (where the roots are made; default a new folder under /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
SUITES=${NEWCOMER_SUITES:-bookworm trixie}
ROOT_SUITES=${NEWCOMER_ROOT_SUITES:-trixie}
ROOT_COMMANDS=${NEWCOMER_ROOT_COMMANDS:-1}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
started=$SECONDS
log() { printf 'newcomer: [%4d s] %s\n' "$((SECONDS - started))" "$*"; }

mapfile -t COMMANDS < <(bash .ci/quickstart.sh)
log "quick-start command 1: ${COMMANDS[0]}"
log "quick-start command 2: ${COMMANDS[1]}"
COMMIT=$(git rev-parse HEAD)
GIT_DIR_OF_REPO=$(git rev-parse --path-format=absolute --git-common-dir)

if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

WORK=${NEWCOMER_WORK:-$(mktemp -d /var/tmp/xetra-newcomer.XXXXXX)}
mkdir -p "$WORK"
MOUNTED=()
# Processes the commands left running inside ROOT (none, normally) would keep it busy.
stop_processes_in() {
  local proc
  for proc in /proc/[0-9]*; do
    [ "$(readlink "$proc/root" 2>/dev/null)" = "$1" ] && kill -KILL "${proc#/proc/}" 2>/dev/null
  done
  return 0
}

cleanup() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    mountpoint -q "${MOUNTED[i]}" || continue
    stop_processes_in "${MOUNTED[i]}"
    umount -R "${MOUNTED[i]}" 2>/dev/null || umount -R -l "${MOUNTED[i]}" || true
  done
  # Never delete through a mount that is still there (/dev of the machine, say).
  if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
    echo "newcomer: mounts left under $WORK; not removing it" >&2
  else
    rm -rf --one-file-system "$WORK"
  fi
}
trap cleanup EXIT

# The machine's extra CA certificates (a TLS-inspecting egress proxy) go into each root, as the
# machine's administrator would have put them there; nothing else of the machine does.
HOOKS=()
for crt in /usr/local/share/ca-certificates/*.crt; do
  [ -e "$crt" ] && HOOKS+=(--customize-hook="copy-in $crt /usr/local/share/ca-certificates/")
done
HOOKS+=(--customize-hook='chroot "$1" update-ca-certificates >/dev/null')
HOOKS+=(--customize-hook='chroot "$1" useradd --create-home --shell /bin/bash newcomer')

make_root() {
  local suite=$1 root=$2
  mmdebstrap --quiet --variant=minbase \
    --include=python3,python3-pip,python3-venv,ca-certificates,git,passwd \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${HOOKS[@]}" \
    "$suite" "$root" "$MIRROR" >"$WORK/$suite-mmdebstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/$suite-mmdebstrap.log"; return 1; }
  mount --bind "$root" "$root"   # a mount point, so `unshare --mount` works inside
  MOUNTED+=("$root")
  mount -t proc proc "$root/proc"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mount -t sysfs -o ro sysfs "$root/sys"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
}

# clone_into ROOT HOME USER: the commit, checked out in HOME/xetra, owned by USER.
clone_into() {
  local root=$1 home=$2 user=$3
  (umask 022
   git clone --quiet --no-checkout "$GIT_DIR_OF_REPO" "$root$home/xetra"
   git -C "$root$home/xetra" checkout --quiet --detach "$COMMIT")
  chroot "$root" chown -R "$user:$user" "$home/xetra"
}

# run_as ROOT USER HOME LOG COMMAND: COMMAND in ~/xetra, with the environment of a fresh login.
run_as() {
  local root=$1 user=$2 home=$3 logfile=$4 command=$5 t0=$SECONDS status=0
  timeout 2400 env -i HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/bin:/bin SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    /usr/sbin/chroot --userspec="$user:$user" "$root" \
    /bin/bash -c "umask 022; cd ~/xetra && $command" >"$logfile" 2>&1 || status=$?
  log "  $user: exit $status after $((SECONDS - t0)) s: $command"
  [ "$status" -eq 0 ] || { tail -n 60 "$logfile"; return 1; }
  tail -n 1 "$logfile" | sed 's/^/      last line: /'
}

failed=0
for suite in $SUITES; do
  root="$WORK/$suite"
  t0=$SECONDS
  make_root "$suite" "$root"
  log "$suite: root made in $((SECONDS - t0)) s: $(chroot "$root" python3 --version)," \
      "python: $(chroot "$root" sh -c 'command -v python || echo none')"
  users=(newcomer)
  case " $ROOT_SUITES " in *" $suite "*) users+=(root) ;; esac
  for user in "${users[@]}"; do
    home=/home/$user
    [ "$user" = root ] && home=/root
    clone_into "$root" "$home" "$user"
    commands="1 2"
    [ "$user" = root ] && commands=$ROOT_COMMANDS
    for n in $commands; do
      logfile="$WORK/$suite-$user-$n.log"
      run_as "$root" "$user" "$home" "$logfile" "${COMMANDS[n - 1]}" || failed=1
      if [ "$n" = 2 ]; then
        grep -E '^=+ .*(passed|failed).* =+$' "$logfile" | tail -n 1 |
          sed "s/^/      pytest ($suite, $user): /" || true
      fi
    done
  done
  stop_processes_in "$root"
  umount -R "$root"
  rm -rf --one-file-system "$root"
done
log "newcomer step: $(( (SECONDS - started) / 60 )) min $(( (SECONDS - started) % 60 )) s"
exit "$failed"
