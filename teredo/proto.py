# Protocol facts in one place.  Every number here comes from an RFC; the
# comment names the section.  Tunables (defaults a user may change) live in
# client.DEFAULTS, not here.

# RFC 4380 §2.6: the global Teredo IPv6 service prefix 2001:0000::/32.
PREFIX = b"\x20\x01\x00\x00"
# RFC 4380 §2.7: the Teredo UDP port of servers (and of our relay peers' servers).
PORT = 3544

# RFC 4380 §4: flags word, bit 0 (0x8000) is the cone bit.
FLAG_CONE = 0x8000
# RFC 5991 §4 (updating RFC 4380 §4): flags are "CRAAAAUG AAAAAAAA"; the 12
# A bits are random, U and G stay zero.
FLAG_RANDOM_MASK = 0x3CFF

# RFC 4380 §5.1.1 encapsulation headers (first two octets of the UDP payload).
AUTH_TYPE = 0x01      # 0x00 0x01: authentication encapsulation
ORIGIN_TYPE = 0x00    # 0x00 0x00: origin indication
AUTH_FIXED = 13       # 4 octets + 8 octets nonce + 1 confirmation octet
ORIGIN_LEN = 8
NONCE_LEN = 8

# RFC 8200 §3 (RFC 2460): IPv6 header.
IPV6_HLEN = 40
NH_TCP = 6
NH_UDP = 17
NH_ICMPV6 = 58
NH_NONE = 59          # "No Next Header": a Teredo bubble (RFC 4380 §2.8)

# RFC 4443 §4.1/§4.2 echo, RFC 4861 §4.1/§4.2 RS/RA, §4.6.2/§4.6.4 options.
ICMP_DST_UNREACH = 1   # RFC 4443 §3.1
ICMP_PORT_UNREACH = 4  # its code for "port unreachable"
ICMP_ECHO_REQUEST = 128
ICMP_ECHO_REPLY = 129
ICMP_RS = 133
ICMP_RA = 134
OPT_PREFIX_INFO = 3
OPT_MTU = 5
ND_HOP_LIMIT = 255    # RFC 4861 §6.1.2: RA must arrive with hop limit 255
HOP_LIMIT = 64        # hop limit of what we originate

# RFC 4380 §5.2.1 link-local source of the RS: fe80::8000:ffff:ffff:ffff with
# the cone bit, fe80::ffff:ffff:ffff without (as deployed servers expect).
LL_CONE = b"\xfe\x80\x00\x00\x00\x00\x00\x00\x80\x00\xff\xff\xff\xff\xff\xff"
LL_NONCONE = b"\xfe\x80\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff"
# RFC 4291 §2.7.1: all-routers multicast, the RS destination.
ALL_ROUTERS = b"\xff\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02"

# RFC 4380 §5.1.2: the Teredo link MTU, and the range an RA may set: the
# RFC 8200 §5 minimum, and at most what we can receive.  The board reads
# 1400-byte datagrams and the peer queues hold 1280-byte packets, so an RA
# asking for more gets 1280 (RFC 4861 §6.3.4: use only what the link takes).
MTU_DEFAULT = 1280
MTU_MIN = 1280
MTU_MAX = 1280

# RFC 4380 §5.2.1: qualification time-out T and repetitions N.
QUAL_TIMEOUT_MS = 4000
QUAL_TRIES = 3
# RFC 4380 §5.2: refresh interval 30 s, randomised to 75-100 %.
REFRESH_S = 30
# RFC 4380 §5.2.4: peer entries are valid 30 s after the last reception;
# connectivity test / bubbles repeat after 2 s, up to 3 times.
PEER_VALID_MS = 30000
PROBE_RETRY_MS = 2000
PROBE_TRIES = 3
# RFC 4380 §5.2.6: bubble rate limits.
BUBBLE_MIN_GAP_MS = 2000
BUBBLE_WINDOW_MS = 300000
BUBBLE_MAX_IN_WINDOW = 4
# RFC 4380 §5.2.8: local discovery.  Bubbles to the Teredo IPv4 discovery
# address (§2.17, link-scope multicast, TTL 1) every 200 to 300 s; a peer
# whose discovery bubble came within 600 s is a local peer (§5.2.4 case 3).
DISCOVERY_ADDR = "224.0.0.253"
DISCOVERY_MIN_MS = 200000
DISCOVERY_SPAN_MS = 100000
LOCAL_VALID_MS = 600000
# ff02::1, the all-nodes on-link multicast address: a discovery bubble's
# IPv6 destination (§5.2.8)
ALL_NODES = b"\xff\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
