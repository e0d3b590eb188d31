# Shell helpers for the generated /scenarios.sh (sourced by /init).
# A scenario is:  begin NAME; [setup...]; run/peer processes; [teardown...]; end NAME
# The harness attributes socket-level AVC records by pid (sockop prints its
# child's pid on every RESULT line) and per-packet records by scenario window.

begin() { CUR=$1; echo "=== SCENARIO $1"; }
end() {
  usleep 30000
  dmesg -c | grep -F 'avc:' | sed "s/^/AVC scenario=$1 /"
  echo "=== END $1"
}
fail() { echo "CONF-SETUP-ERROR scenario=$CUR $*"; }

# permissive/enforcing (going back to enforcing resets the AVC, so a check a
# permissive run cached as allowed is made and logged again next time)
mode() { echo "$1" > /sys/fs/selinux/enforce || fail "enforce=$1"; }

# sysctl NAME VALUE / sysctl_restore: IPv4 port sysctls constrain each other
# (ip_unprivileged_port_start <= ip_local_port_range low), so retry in a loop
SAVED_SYSCTL=
sysctl_set() {
  f=/proc/sys/$(echo "$1" | tr . /)
  SAVED_SYSCTL="$SAVED_SYSCTL
$1=$(tr '\t' ' ' < "$f")"
  PENDING="$PENDING
$1=$2"
}
sysctl_apply() {   # write every PENDING value; order-independent (two passes)
  for pass in 1 2 3; do
    left=
    echo "$PENDING" | while IFS== read -r k v; do
      [ -n "$k" ] || continue
      echo "$v" > /proc/sys/$(echo "$k" | tr . /) 2>/dev/null || echo "$k=$v"
    done > /tmp/sysctl.left
    left=$(cat /tmp/sysctl.left)
    PENDING=$left
    [ -z "$left" ] && break
  done
  [ -z "$PENDING" ] || fail "sysctl could not set: $PENDING"
  PENDING=
}
sysctl_restore() {
  PENDING=$SAVED_SYSCTL; SAVED_SYSCTL=
  sysctl_apply
}

# booleans: set now, restore to the boot value afterwards
SAVED_BOOLS=
bool_set() {
  b=/sys/fs/selinux/booleans/$1
  [ -e "$b" ] || { fail "no boolean $1"; return; }
  SAVED_BOOLS="$SAVED_BOOLS $1=$(cut -d' ' -f1 < "$b")"
  echo "$2" > "$b" && echo 1 > /sys/fs/selinux/commit_pending_bools || fail "bool $1=$2"
}
bool_restore() {
  for kv in $SAVED_BOOLS; do echo "${kv#*=}" > /sys/fs/selinux/booleans/${kv%%=*}; done
  [ -z "$SAVED_BOOLS" ] || echo 1 > /sys/fs/selinux/commit_pending_bools
  SAVED_BOOLS=
}

# NetLabel static (fallback) label for all loopback traffic
netlabel_on() {
  netlabelctl unlbl add interface:lo address:127.0.0.0/8 label:"$1" || fail "netlabelctl add v4"
  netlabelctl unlbl add interface:lo address:::1/128 label:"$1" || fail "netlabelctl add v6"
}
netlabel_off() {
  netlabelctl unlbl del interface:lo address:127.0.0.0/8 || fail "netlabelctl del v4"
  netlabelctl unlbl del interface:lo address:::1/128 || fail "netlabelctl del v6"
}

# SECMARK through nftables: every packet in and out gets the label
secmark_on() {
  cat > /tmp/secmark.nft <<NFT
table inet selnet {
  secmark lbl { "$1" }
  chain in { type filter hook input priority 0; meta secmark set "lbl"; }
  chain out { type filter hook output priority 0; meta secmark set "lbl"; }
}
NFT
  nft -f /tmp/secmark.nft || fail "nft secmark"
}
secmark_off() { nft delete table inet selnet || fail "nft delete"; usleep 100000; }

# wait for a file (a listener's ready= mark), at most 3 s
waitfile() {
  i=0; while [ ! -e "$1" ] && [ $i -lt 150 ]; do usleep 20000; i=$((i+1)); done
}
# bg NAME OPS... : a sockop in the background (a server), ready mark /tmp/ready
bg() { rm -f /tmp/ready; sockop -r /tmp/ready "$@" & BGPID=$!; waitfile /tmp/ready; }
# bgwait [MS]: give the background process MS ms to finish, then end it
bgwait() {
  i=0; n=$(( ${1:-2000} / 20 ))
  while kill -0 $BGPID 2>/dev/null && [ $i -lt $n ]; do usleep 20000; i=$((i+1)); done
  kill $BGPID 2>/dev/null; wait $BGPID 2>/dev/null
}
