#!/bin/sh
# Installs what the network lab needs (Debian packages) when it is missing.
# Root only; without root it says what it would need and returns 0, and the
# lab tests then skip with that reason.
need=""
for pair in miredo:/usr/sbin/miredo miredo-server:/usr/sbin/miredo-server iptables:/usr/sbin/iptables \
            iputils-ping:/usr/bin/ping tshark:/usr/bin/tshark iproute2:/usr/sbin/ip conntrack:/usr/sbin/conntrack; do
  pkg=${pair%%:*}; bin=${pair#*:}
  [ -x "$bin" ] || need="$need $pkg"
done
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "lab: not root, so not installing:$need (the lab tests will be skipped)"
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
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends $need >/dev/null
rc=$?
[ -n "$made" ] && rm -f /usr/sbin/policy-rc.d
exit $rc
