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

# Labeled IPsec on loopback (as the selinux-testsuite's inet_socket ipsec-load does):
# ipsec_on SPD SA...: an AH transport SA for each context SA (127.0.0.1 and ::1; a flow
# uses the SA that carries its own label) and "dir out" SPD entries labeled SPD for TCP
# and UDP.  lo normally skips xfrm (disable_xfrm/disable_policy 1): turn that off.
IP=/usr/sbin/ip   # iproute2's (busybox ip has no xfrm ctx)
ipsec_on() {
  spd=$1; shift
  echo 0 > /proc/sys/net/ipv4/conf/lo/disable_xfrm || fail "lo disable_xfrm"
  echo 0 > /proc/sys/net/ipv4/conf/lo/disable_policy || fail "lo disable_policy"
  spi=512
  for sa in "$@"; do
    for a in 127.0.0.1 ::1; do
      $IP xfrm state add src $a dst $a proto ah spi $spi ctx "$sa" \
        auth sha1 0123456789012345 || fail "xfrm state $a $sa"
    done
    spi=$((spi + 1))
  done
  for a in 127.0.0.1 ::1; do
    for p in tcp udp; do
      $IP xfrm policy add src $a dst $a proto $p dir out ctx "$spd" \
        tmpl proto ah mode transport level required || fail "xfrm policy $a $p"
    done
  done
}
ipsec_off() {
  $IP xfrm policy flush || fail "xfrm policy flush"
  $IP xfrm state flush || fail "xfrm state flush"
  echo 1 > /proc/sys/net/ipv4/conf/lo/disable_xfrm
  echo 1 > /proc/sys/net/ipv4/conf/lo/disable_policy
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

# NetLabel CIPSO (IPv4) / CALIPSO (IPv6) on loopback, DOI 16.  The default mapping is split
# by address: unlabeled everywhere, the labeling protocol on the loopback address.
#   cipso_on pass:  the packet carries the sender's MLS level (tag 5, ranged categories:
#                   tag 1's bitmap stops at c239, and s15:c0.c1023 would not fit: ENOSPC)
#   cipso_on local: the packet carries the sender's whole SID (loopback only; no MLS needed)
netlabel_map() {
  netlabelctl map del default || fail "netlabelctl map del default"
  netlabelctl map add default address:0.0.0.0/0 protocol:unlbl || fail "map add v4 unlbl"
  netlabelctl map add default address:::/0 protocol:unlbl || fail "map add v6 unlbl"
  netlabelctl map add default "$1" "$2" || fail "map add default $1 $2"
}
cipso_on() {
  if [ "$1" = local ]; then
    netlabelctl cipsov4 add local doi:16 || fail "netlabelctl cipsov4 add local"
  else
    netlabelctl cipsov4 add pass doi:16 tags:5 || fail "netlabelctl cipsov4 add pass"
  fi
  netlabel_map address:127.0.0.0/8 protocol:cipsov4,16
}
calipso_on() {
  netlabelctl calipso add pass doi:16 || fail "netlabelctl calipso add pass"
  netlabel_map address:::1/128 protocol:calipso,16
}
labeled_off() {   # back to the boot mapping: everything unlabeled, no DOI
  netlabelctl map del default || fail "netlabelctl map del default"
  netlabelctl map add default protocol:unlbl || fail "netlabelctl map add default unlbl"
  netlabelctl cipsov4 del doi:16 2>/dev/null
  netlabelctl calipso del doi:16 2>/dev/null
  usleep 100000
}
