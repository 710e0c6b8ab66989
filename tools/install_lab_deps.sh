#!/bin/sh
# Installs what the network lab needs: the Debian packages in
# tools/lab-deps.txt (the same list the lab checks) whose commands are
# missing.  As root it installs them; without root it says what is missing
# and what to run, and exits 0 (the lab tests then skip, saying why; as root
# or under CI they fail instead).
list="$(dirname "$0")/lab-deps.txt"
need=""
while read -r pkg paths; do
  case "$pkg" in ""|\#*) continue ;; esac
  for p in $paths; do
    if [ ! -e "$p" ]; then need="$need $pkg"; break; fi
  done
done < "$list"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "lab: missing Debian packages:$need; not root, so not installing them (run: sudo make lab-deps)"
  exit 0
fi
echo "lab: installing$need"
# The packages must not start the system's own miredo: a policy-rc.d that
# refuses service starts, in place only while we install.
made=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1
fi
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null
rc=0
apt-get update -qq >/dev/null || rc=$?
[ $rc = 0 ] && { apt-get install -y -qq --no-install-recommends $need >/dev/null || rc=$?; }
[ -n "$made" ] && rm -f /usr/sbin/policy-rc.d
if [ $rc != 0 ]; then
  echo "lab: apt-get failed (exit $rc) installing$need: run apt-get install$need by hand to see why" >&2
fi
exit $rc
