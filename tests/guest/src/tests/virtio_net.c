/* virtio-net (virtio 1.2 §5.1): a minimal polling driver (ring 3, no interrupts) over virtio-mmio
 * or virtio-pci (the first net device: MMIO first, then PCI), with just enough of ARP, IPv4, ICMP
 * and UDP to talk to the host's own stack through a TAP device. Facts from the runner:
 *   vnet=N                 number of virtio-net devices (MMIO + PCI; default 1)
 *   vnet_mac=xx:..:xx      the MAC the device must report (VIRTIO_NET_F_MAC)
 *   vnet_ip=A.B.C.D/P      the guest's address; vnet_peer=A.B.C.D the host side (or a peer guest)
 *   vnet_udp_port=N        UDP echo port on the peer (virtio_net_udp)
 *   vnet_ping_in=N         virtio_net_arp_icmp: the runner pings the guest N times after the
 *                          guest's own pings (the guest prints INPUT and waits for the token)
 * Features: VERSION_1 (modern), MAC, STATUS, MTU, MRG_RXBUF if offered; 2048-byte receive
 * buffers (one per frame even with MRG_RXBUF), 12-byte virtio_net_hdr, no offloads.
 * Every receive loop answers ARP requests and ICMP echo requests for vnet_ip.
 *   virtio_net           discovery, init, MAC = vnet_mac, link status up (if STATUS)
 *   virtio_net_arp_icmp  ARP for the peer, ICMP echo of 56/1000/1472 payload bytes byte for byte,
 *                        then answers the runner's pings (vnet_ping_in)
 *   virtio_net_udp       UDP datagrams of 1..1472 bytes (1472 = MTU 1500 - IP - UDP) to the echo
 *                        port, replies byte for byte
 * Guest-to-guest (tests/guest/runner/pair.py; vnet_peer = the other guest):
 *   virtio_net_responder serves ARP, ICMP echo and UDP echo on vnet_udp_port for vnet_resp_ms
 *                        (default 10000) or until the serial line "stop"; prints "NET ready"
 *   virtio_net_pinger    per serial line "round K": ARP + ICMP echo (56, 1472) + UDP echo (1, 1472)
 *                        within vnet_round_ms (default 5000), prints "ROUND K ok|fail ..."; the
 *                        line "end" finishes (PASS if every round was ok)
 *   vnet_link_ms=N       virtio_net waits up to N ms for link up (peer links come up later)
 * Benchmarks (ring 3, polling, up to 16 frames in flight, one kick per batch):
 *   bench virtio_net_tx  UDP datagrams to vnet_peer:vnet_sink_port (default 9) for vnet_bench_ms
 *                        (default 500) each: 1472-byte payloads (MB/s of payload) and 18-byte
 *                        payloads (60-byte frames, packets/s); rates of frames the device completed
 *   bench virtio_net_rx  counts UDP datagrams for us on vnet_sink_port: payload >= 1000 bytes and
 *                        < 64 bytes separately, first to last frame; ends after vnet_rx_idle_ms
 *                        (default 500) without frames once frames arrived (or 60 s) */
#include "virtio.h"

#define VIRTIO_NET_F_MTU 3
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_S_LINK_UP 1
#define NET_WANT (BIT64(VIRTIO_NET_F_MTU) | BIT64(VIRTIO_NET_F_MAC) | BIT64(VIRTIO_NET_F_MRG_RXBUF) | BIT64(VIRTIO_NET_F_STATUS))

#define NRX 16
#define BUFSZ 2048
#define RXQ 0
#define TXQ 1

struct vnet_hdr {
    uint8_t flags, gso_type;
    uint16_t hdr_len, gso_size, csum_start, csum_offset;
    uint16_t num_buffers; /* VERSION_1 or MRG_RXBUF */
} __attribute__((packed));

struct net {
    struct vdev d;
    unsigned hdrlen;
    uint8_t mac[6];
    uint8_t *rx, *tx;
    uint32_t ip, peer, mask; /* host byte order */
    uint8_t peer_mac[6];
    bool peer_known;
    /* counters */
    uint64_t rx_frames, rx_bad, arp_answered, icmp_answered;
    /* last ICMP echo reply from the peer / UDP datagram for us */
    bool echo_seen;
    uint16_t echo_id, echo_seq, echo_len;
    uint8_t echo_data[1500];
    bool udp_seen;
    uint16_t udp_sport, udp_dport, udp_len;
    uint8_t udp_data[1500];
    /* responder / sink */
    uint16_t echo_port, sink_port;
    uint64_t udp_echoed;
    uint64_t sink_frames[2], sink_bytes[2], sink_t0[2], sink_t1[2];
};
static struct net net_dev;

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)), put16(p + 2, (uint16_t)v); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) sum += be16(p + i);
    if (n & 1) sum += (uint32_t)p[n - 1] << 8;
    return sum;
}
static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* "a.b.c.d" (+ optional "/p") at s; stops at space/NUL */
static bool parse_ip(const char *s, uint32_t *ip, unsigned *prefix)
{
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        unsigned x = 0, nd = 0;
        while (*s >= '0' && *s <= '9' && nd < 4) x = x * 10 + (unsigned)(*s++ - '0'), nd++;
        if (!nd || x > 255) return false;
        v = v << 8 | x;
        if (k < 3 && *s++ != '.') return false;
    }
    if (prefix) {
        *prefix = 24;
        if (*s == '/') {
            unsigned p = 0;
            s++;
            while (*s >= '0' && *s <= '9') p = p * 10 + (unsigned)(*s++ - '0');
            if (p == 0 || p > 30) return false;
            *prefix = p;
        }
    }
    *ip = v;
    return true;
}
static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static bool parse_mac(const char *s, uint8_t m[6])
{
    for (int i = 0; i < 6; i++) {
        int h = hexval(s[0]), l = hexval(s[1]);
        if (h < 0 || l < 0) return false;
        m[i] = (uint8_t)(h << 4 | l);
        s += 2;
        if (i < 5 && *s++ != ':') return false;
    }
    return true;
}
#define MACF "%02x:%02x:%02x:%02x:%02x:%02x"
#define MACA(m) (m)[0], (m)[1], (m)[2], (m)[3], (m)[4], (m)[5]
#define IPF "%u.%u.%u.%u"
#define IPA(v) (unsigned)((v) >> 24), (unsigned)((v) >> 16 & 255), (unsigned)((v) >> 8 & 255), (unsigned)((v) & 255)

static unsigned net_count(void)
{
    unsigned n = 0;
    while (vmmio_find(VIRTIO_ID_NET, n)) n++;
    for (unsigned i = 0; vpci_find(VIRTIO_ID_NET, i); i++) n++;
    return n;
}

static void rx_post(struct net *n, unsigned i)
{
    struct vbuf v = {(uintptr_t)(n->rx + (size_t)i * BUFSZ), BUFSZ, true};
    vq_add_at(&n->d.q[RXQ], (uint16_t)i, &v, 1);
}

/* the first virtio-net device (MMIO, else PCI with MSI-X and INTx off), queues polled */
static bool net_open(struct net *n, char *err, size_t esz)
{
    struct vmmio_slot *s = vmmio_find(VIRTIO_ID_NET, 0);
    struct vpci_fn *f = s ? NULL : vpci_find(VIRTIO_ID_NET, 0);
    if (!s && !f) return snprintf(err, esz, "no virtio-net device (MMIO or PCI)"), false;
    bool ok;
    if (f) {
        vpci_msix_enable(f, false);
        vpci_intx(f, false);
        ok = vpci_init(&n->d, f, NET_WANT, 2, NRX, NULL, VIRTIO_MSI_NO_VECTOR);
    } else {
        ok = vdev_init(&n->d, s, NET_WANT, 2, NRX);
    }
    if (!ok) return snprintf(err, esz, "init %s: %s", vdev_name(&n->d), n->d.err), false;
    if (n->d.q[RXQ].size < NRX) return snprintf(err, esz, "receive queue size %u < %u", n->d.q[RXQ].size, NRX), false;
    n->hdrlen = (n->d.features & (BIT64(VIRTIO_F_VERSION_1) | BIT64(VIRTIO_NET_F_MRG_RXBUF))) ? 12 : 10;
    uint32_t c0 = vdev_cfg32(&n->d, 0), c1 = vdev_cfg32(&n->d, 4);
    for (int i = 0; i < 4; i++) n->mac[i] = (uint8_t)(c0 >> (8 * i));
    n->mac[4] = (uint8_t)c1, n->mac[5] = (uint8_t)(c1 >> 8);
    if (!n->rx) {
        n->rx = dma_alloc((size_t)NRX * BUFSZ, 4096);
        n->tx = dma_alloc(BUFSZ, 4096);
    }
    if (!n->rx || !n->tx) return snprintf(err, esz, "out of DMA memory"), false;
    vq_set_no_interrupt(&n->d.q[RXQ], true);
    vq_set_no_interrupt(&n->d.q[TXQ], true);
    for (unsigned i = 0; i < NRX; i++) rx_post(n, i);
    vq_kick(&n->d, RXQ);
    n->rx_frames = n->rx_bad = n->arp_answered = n->icmp_answered = 0;
    n->peer_known = n->echo_seen = n->udp_seen = false;
    n->echo_port = n->sink_port = 0;
    n->udp_echoed = 0;
    memset(n->sink_frames, 0, sizeof n->sink_frames), memset(n->sink_bytes, 0, sizeof n->sink_bytes);
    /* addresses */
    const char *v = cmdline_get("vnet_ip");
    unsigned prefix = 24;
    if (!v || !parse_ip(v, &n->ip, &prefix)) return snprintf(err, esz, "vnet_ip=A.B.C.D/P missing or malformed"), false;
    n->mask = ~0u << (32 - prefix);
    v = cmdline_get("vnet_peer");
    if (!v || !parse_ip(v, &n->peer, NULL)) return snprintf(err, esz, "vnet_peer=A.B.C.D missing or malformed"), false;
    return true;
}

/* transmit one frame (Ethernet header onwards, built at n->tx + hdrlen), wait for completion */
static bool net_send(struct net *n, unsigned len)
{
    memset(n->tx, 0, n->hdrlen);
    if (len < 60) {
        memset(n->tx + n->hdrlen + len, 0, 60 - len);
        len = 60;
    }
    struct vbuf v = {(uintptr_t)n->tx, n->hdrlen + len, false};
    if (vq_add_at(&n->d.q[TXQ], 0, &v, 1) < 0) return false;
    vq_kick(&n->d, TXQ);
    return vq_wait(&n->d, TXQ, 1000000, NULL, NULL);
}

static uint8_t *eth_start(struct net *n, const uint8_t *dst, uint16_t type)
{
    uint8_t *e = n->tx + n->hdrlen;
    memcpy(e, dst, 6);
    memcpy(e + 6, n->mac, 6);
    put16(e + 12, type);
    return e + 14;
}

static bool arp_send(struct net *n, uint16_t op, const uint8_t *tha, uint32_t tpa)
{
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    uint8_t *a = eth_start(n, op == 1 ? bcast : tha, 0x0806);
    put16(a, 1), put16(a + 2, 0x0800), a[4] = 6, a[5] = 4, put16(a + 6, op);
    memcpy(a + 8, n->mac, 6), put32(a + 14, n->ip);
    if (op == 1) memset(a + 18, 0, 6);
    else memcpy(a + 18, tha, 6);
    put32(a + 24, tpa);
    return net_send(n, 14 + 28);
}

/* IPv4 header at p (20 bytes), payload already in place after it */
static unsigned ip_finish(struct net *n, uint8_t *p, uint8_t proto, uint32_t dst, unsigned paylen)
{
    static uint16_t ident = 1;
    p[0] = 0x45, p[1] = 0;
    put16(p + 2, (uint16_t)(20 + paylen));
    put16(p + 4, ident++);
    put16(p + 6, 0x4000); /* DF */
    p[8] = 64, p[9] = proto;
    put16(p + 10, 0);
    put32(p + 12, n->ip), put32(p + 16, dst);
    put16(p + 10, csum_fold(csum_add(0, p, 20)));
    return 14 + 20 + paylen;
}

static bool icmp_send(struct net *n, const uint8_t *dmac, uint32_t dst, uint8_t type, uint16_t id, uint16_t seq,
                      const uint8_t *data, unsigned len)
{
    uint8_t *ip = eth_start(n, dmac, 0x0800), *ic = ip + 20;
    ic[0] = type, ic[1] = 0;
    put16(ic + 2, 0), put16(ic + 4, id), put16(ic + 6, seq);
    memcpy(ic + 8, data, len);
    put16(ic + 2, csum_fold(csum_add(0, ic, 8 + len)));
    return net_send(n, ip_finish(n, ip, 1, dst, 8 + len));
}

static uint16_t udp_csum(uint32_t src, uint32_t dst, const uint8_t *u, unsigned ulen)
{
    uint8_t ph[12];
    put32(ph, src), put32(ph + 4, dst), ph[8] = 0, ph[9] = 17, put16(ph + 10, (uint16_t)ulen);
    uint16_t c = csum_fold(csum_add(csum_add(0, ph, 12), u, ulen));
    return c ? c : 0xffff;
}

static bool udp_send_to(struct net *n, const uint8_t *dmac, uint32_t dst, uint16_t sport, uint16_t dport,
                        const uint8_t *data, unsigned len)
{
    uint8_t *ip = eth_start(n, dmac, 0x0800), *u = ip + 20;
    put16(u, sport), put16(u + 2, dport), put16(u + 4, (uint16_t)(8 + len)), put16(u + 6, 0);
    memcpy(u + 8, data, len);
    put16(u + 6, udp_csum(n->ip, dst, u, 8 + len));
    return net_send(n, ip_finish(n, ip, 17, dst, 8 + len));
}

static bool udp_send(struct net *n, uint16_t sport, uint16_t dport, const uint8_t *data, unsigned len)
{
    return udp_send_to(n, n->peer_mac, n->peer, sport, dport, data, len);
}

/* one received frame */
static void net_input(struct net *n, const uint8_t *e, unsigned len)
{
    if (len < 14) return (void)n->rx_bad++;
    uint16_t type = be16(e + 12);
    const uint8_t *p = e + 14;
    len -= 14;
    if (type == 0x0806 && len >= 28) {
        if (be16(p) != 1 || be16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) return;
        uint16_t op = be16(p + 6);
        uint32_t spa = be32(p + 14), tpa = be32(p + 24);
        if (spa == n->peer) memcpy(n->peer_mac, p + 8, 6), n->peer_known = true;
        if (op == 1 && tpa == n->ip) {
            uint8_t sha[6];
            memcpy(sha, p + 8, 6);
            if (arp_send(n, 2, sha, spa)) n->arp_answered++;
        }
        return;
    }
    if (type != 0x0800 || len < 20) return;
    unsigned ihl = (p[0] & 15) * 4u, tot = be16(p + 2);
    if ((p[0] >> 4) != 4 || ihl < 20 || tot < ihl || tot > len) return (void)n->rx_bad++;
    if (csum_fold(csum_add(0, p, ihl)) != 0) return (void)n->rx_bad++;
    if (be16(p + 6) & 0x3fff) return; /* fragments: not for this driver */
    uint32_t src = be32(p + 12), dst = be32(p + 16);
    if (dst != n->ip) return;
    const uint8_t *l4 = p + ihl;
    unsigned l4len = tot - ihl;
    if (p[9] == 1 && l4len >= 8) {
        if (csum_fold(csum_add(0, l4, l4len)) != 0) return (void)n->rx_bad++;
        uint16_t id = be16(l4 + 4), seq = be16(l4 + 6);
        if (l4[0] == 8) { /* echo request for us: answer to the sender's MAC */
            uint8_t smac[6];
            static uint8_t copy[1500];
            memcpy(smac, e + 6, 6);
            memcpy(copy, l4 + 8, l4len - 8);
            if (icmp_send(n, smac, src, 0, id, seq, copy, l4len - 8)) n->icmp_answered++;
        } else if (l4[0] == 0 && src == n->peer) {
            n->echo_id = id, n->echo_seq = seq, n->echo_len = (uint16_t)(l4len - 8);
            memcpy(n->echo_data, l4 + 8, l4len - 8);
            n->echo_seen = true;
        }
    } else if (p[9] == 17 && l4len >= 8) {
        unsigned ulen = be16(l4 + 4);
        if (ulen < 8 || ulen > l4len) return (void)n->rx_bad++;
        if (be16(l4 + 6)) { /* verify: the sum over pseudo header + datagram (checksum included) is 0 */
            uint8_t ph[12];
            put32(ph, src), put32(ph + 4, dst), ph[8] = 0, ph[9] = 17, put16(ph + 10, (uint16_t)ulen);
            if (csum_fold(csum_add(csum_add(0, ph, 12), l4, ulen)) != 0) return (void)n->rx_bad++;
        }
        if (n->echo_port && be16(l4 + 2) == n->echo_port) { /* responder: echo to the sender */
            static uint8_t copy[1500];
            uint8_t smac[6];
            memcpy(smac, e + 6, 6);
            memcpy(copy, l4 + 8, ulen - 8);
            if (udp_send_to(n, smac, src, n->echo_port, be16(l4), copy, ulen - 8)) n->udp_echoed++;
            return;
        }
        if (n->sink_port && be16(l4 + 2) == n->sink_port) { /* bench virtio_net_rx */
            unsigned k = ulen - 8 >= 1000 ? 0 : ulen - 8 < 64 ? 1 : 2;
            if (k < 2) {
                uint64_t t = now_us();
                if (!n->sink_frames[k]) n->sink_t0[k] = t;
                n->sink_t1[k] = t;
                n->sink_frames[k]++;
                n->sink_bytes[k] += ulen - 8;
            }
            return;
        }
        if (src != n->peer) return;
        n->udp_sport = be16(l4), n->udp_dport = be16(l4 + 2), n->udp_len = (uint16_t)(ulen - 8);
        memcpy(n->udp_data, l4 + 8, ulen - 8);
        n->udp_seen = true;
    }
}

/* process every used receive buffer, repost, kick once */
static void net_poll(struct net *n)
{
    uint32_t id, len;
    unsigned k = 0;
    while (vq_poll(&n->d.q[RXQ], &id, &len)) {
        if (id >= NRX || len < n->hdrlen || len > BUFSZ) {
            n->rx_bad++;
            continue;
        }
        const uint8_t *b = n->rx + (size_t)id * BUFSZ;
        const struct vnet_hdr *h = (const void *)b;
        if (n->hdrlen == 12 && (n->d.features & BIT64(VIRTIO_NET_F_MRG_RXBUF)) && h->num_buffers != 1) n->rx_bad++;
        else {
            n->rx_frames++;
            net_input(n, b + n->hdrlen, len - n->hdrlen);
        }
        rx_post(n, id);
        k++;
    }
    if (k) vq_kick(&n->d, RXQ);
}

/* poll until cond or timeout (answering ARP/ICMP meanwhile) */
#define NET_WAIT(n, cond, us) WAIT_US((net_poll(n), (cond)), us)

static const char *net_arp_peer(struct net *n, char *msg, size_t msz)
{
    for (int t = 0; t < 20 && !n->peer_known; t++) {
        if (!arp_send(n, 1, NULL, n->peer)) return snprintf(msg, msz, "transmit of ARP request did not complete"), msg;
        NET_WAIT(n, n->peer_known, 250000);
    }
    if (!n->peer_known)
        return snprintf(msg, msz, "no ARP reply from " IPF " in 5 s (rx frames %lu, bad %lu)", IPA(n->peer), n->rx_frames, n->rx_bad), msg;
    return NULL;
}

static void net_fail(struct net *n, const char *what)
{
    vdev_reset(&n->d);
    test_fail("%s: %s", vdev_name(&n->d), what);
}

static void test_virtio_net(void)
{
    struct net *n = &net_dev;
    char err[160];
    uint64_t want = 1;
    cmdline_u64("vnet", &want);
    unsigned cnt = net_count();
    if (cnt != want) return test_fail("%u virtio-net devices, expected vnet=%lu", cnt, want);
    if (!net_open(n, err, sizeof err)) return test_fail("%s", err);
    if (!(n->d.features & BIT64(VIRTIO_NET_F_MAC))) return net_fail(n, "device does not offer VIRTIO_NET_F_MAC");
    const char *m = cmdline_get("vnet_mac");
    uint8_t wmac[6];
    if (m && !parse_mac(m, wmac)) return net_fail(n, "vnet_mac= malformed");
    if (m && memcmp(wmac, n->mac, 6)) {
        snprintf(err, sizeof err, "MAC " MACF ", expected vnet_mac=" MACF, MACA(n->mac), MACA(wmac));
        return net_fail(n, err);
    }
    uint64_t link_ms = 0;
    cmdline_u64("vnet_link_ms", &link_ms);
    if (n->d.features & BIT64(VIRTIO_NET_F_STATUS))
        WAIT_US((vdev_cfg32(&n->d, 4) >> 16) & VIRTIO_NET_S_LINK_UP, link_ms * 1000);
    uint32_t c1 = vdev_cfg32(&n->d, 4), c2 = vdev_cfg32(&n->d, 8);
    uint16_t status = (uint16_t)(c1 >> 16), mtu = (uint16_t)(c2 >> 16);
    if ((n->d.features & BIT64(VIRTIO_NET_F_STATUS)) && !(status & VIRTIO_NET_S_LINK_UP))
        return net_fail(n, "link is down (config status 0)");
    char mtus[16] = "-";
    if (n->d.features & BIT64(VIRTIO_NET_F_MTU)) snprintf(mtus, sizeof mtus, "%u", mtu);
    vdev_reset(&n->d);
    test_pass("%s mac=" MACF " features=%lx hdr=%u status=%x mtu=%s mrg_rxbuf=%d", vdev_name(&n->d), MACA(n->mac),
              n->d.features, n->hdrlen, status, mtus, (n->d.features & BIT64(VIRTIO_NET_F_MRG_RXBUF)) != 0);
}
GUEST_TEST(virtio_net, test_virtio_net, TEST_NORMAL, "virtio-net: discovery, init, MAC and link status");

/* a line from COM1 without interrupts, polled between network polls; true when it equals tok */
static bool serial_line_poll(char *buf, unsigned *len, unsigned cap, const char *tok)
{
    while (inb(COM1 + 5) & 1) {
        char c = (char)inb(COM1);
        if (c == '\r') continue;
        if (c == '\n') {
            buf[*len] = 0;
            bool ok = !strcmp(buf, tok);
            *len = 0;
            if (ok) return true;
            continue;
        }
        if (*len + 1 < cap) buf[(*len)++] = c;
    }
    return false;
}

static void test_virtio_net_arp_icmp(void)
{
    struct net *n = &net_dev;
    char err[200];
    if (!net_open(n, err, sizeof err)) return test_fail("%s", err);
    const char *e = net_arp_peer(n, err, sizeof err);
    if (e) return net_fail(n, e);
    static const unsigned sizes[] = {56, 1000, 1472, 0, 56};
    static uint8_t payload[1500];
    unsigned nreplies = 0;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned len = sizes[i];
        for (unsigned j = 0; j < len; j++) payload[j] = (uint8_t)(j * 7 + i * 31 + 1);
        bool got = false;
        for (int t = 0; t < 3 && !got; t++) {
            n->echo_seen = false;
            uint16_t seq = (uint16_t)(i * 4 + (unsigned)t + 1);
            if (!icmp_send(n, n->peer_mac, n->peer, 8, 0x5157, seq, payload, len)) return net_fail(n, "transmit did not complete");
            NET_WAIT(n, n->echo_seen && n->echo_id == 0x5157 && n->echo_seq == seq, 1000000);
            got = n->echo_seen && n->echo_id == 0x5157 && n->echo_seq == seq;
        }
        if (!got) {
            snprintf(err, sizeof err, "no ICMP echo reply to %u payload bytes from " IPF " (3 tries)", len, IPA(n->peer));
            return net_fail(n, err);
        }
        if (n->echo_len != len || memcmp(n->echo_data, payload, len)) {
            snprintf(err, sizeof err, "echo reply of %u bytes differs from the %u sent", n->echo_len, len);
            return net_fail(n, err);
        }
        nreplies++;
    }
    /* the peer pings us: INPUT asks the runner to run ping and send the token when it is done */
    uint64_t want_in = 0;
    cmdline_u64("vnet_ping_in", &want_in);
    if (want_in) {
        uint64_t before = n->icmp_answered;
        char tok[24], line[40];
        unsigned ll = 0;
        snprintf(tok, sizeof tok, "ping%lx", (rdtsc() >> 8) & 0xffffff);
        printk("INPUT virtio_net_arp_icmp %s\n", tok);
        bool done = NET_WAIT(n, serial_line_poll(line, &ll, sizeof line, tok), 20000000);
        uint64_t answered = n->icmp_answered - before;
        if (!done) {
            snprintf(err, sizeof err, "no token from the runner within 20 s (answered %lu echo requests)", answered);
            return net_fail(n, err);
        }
        if (answered < want_in) {
            snprintf(err, sizeof err, "answered %lu echo requests from the peer, expected vnet_ping_in=%lu", answered, want_in);
            return net_fail(n, err);
        }
    }
    vdev_reset(&n->d);
    test_pass("%s ip=" IPF " peer=" IPF " peer_mac=" MACF " echo=%u (56..1472 bytes) arp_answered=%lu icmp_answered=%lu rx=%lu bad=%lu",
              vdev_name(&n->d), IPA(n->ip), IPA(n->peer), MACA(n->peer_mac), nreplies, n->arp_answered, n->icmp_answered,
              n->rx_frames, n->rx_bad);
}
GUEST_TEST(virtio_net_arp_icmp, test_virtio_net_arp_icmp, TEST_NORMAL, "virtio-net: ARP + ICMP echo both ways");

static void test_virtio_net_udp(void)
{
    struct net *n = &net_dev;
    char err[200];
    uint64_t port = 7;
    cmdline_u64("vnet_udp_port", &port);
    if (!net_open(n, err, sizeof err)) return test_fail("%s", err);
    const char *e = net_arp_peer(n, err, sizeof err);
    if (e) return net_fail(n, e);
    static const unsigned sizes[] = {1, 18, 64, 512, 1000, 1400, 1471, 1472};
    static uint8_t payload[1500];
    uint64_t bytes = 0, retries = 0;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned len = sizes[i];
        uint16_t sport = (uint16_t)(40000 + i);
        for (unsigned j = 0; j < len; j++) payload[j] = (uint8_t)((j * 13) ^ (i * 71) ^ (j >> 8));
        bool got = false;
        for (int t = 0; t < 3 && !got; t++) {
            retries += t > 0;
            n->udp_seen = false;
            if (!udp_send(n, sport, (uint16_t)port, payload, len)) return net_fail(n, "transmit did not complete");
            NET_WAIT(n, n->udp_seen && n->udp_dport == sport, 1000000);
            got = n->udp_seen && n->udp_dport == sport;
        }
        if (!got) {
            snprintf(err, sizeof err, "no UDP echo of %u bytes from " IPF ":%lu (3 tries)", len, IPA(n->peer), port);
            return net_fail(n, err);
        }
        if (n->udp_sport != port || n->udp_len != len || memcmp(n->udp_data, payload, len)) {
            snprintf(err, sizeof err, "UDP reply (port %u, %u bytes) differs from the %u bytes sent", n->udp_sport, n->udp_len, len);
            return net_fail(n, err);
        }
        bytes += len;
    }
    vdev_reset(&n->d);
    test_pass("%s %u datagrams 1..1472 bytes to " IPF ":%lu echoed byte for byte (%lu bytes, %lu retries, rx=%lu bad=%lu)",
              vdev_name(&n->d), (unsigned)(sizeof sizes / sizeof sizes[0]), IPA(n->peer), port, bytes, retries, n->rx_frames, n->rx_bad);
}
GUEST_TEST(virtio_net_udp, test_virtio_net_udp, TEST_NORMAL, "virtio-net: UDP echo byte for byte up to 1472 bytes");

/* ---- guest-to-guest: responder and pinger (tests/guest/runner/pair.py) --------------------- */


static void test_virtio_net_responder(void)
{
    struct net *n = &net_dev;
    char err[200], line[40];
    unsigned ll = 0;
    uint64_t port = 7777, ms = 10000;
    cmdline_u64("vnet_udp_port", &port);
    cmdline_u64("vnet_resp_ms", &ms);
    if (!net_open(n, err, sizeof err)) return test_fail("%s", err);
    n->echo_port = (uint16_t)port;
    printk("NET ready %s ip=" IPF " udp=%lu for %lu ms\n", vdev_name(&n->d), IPA(n->ip), port, ms);
    bool stopped = NET_WAIT(n, serial_getline(line, &ll, sizeof line) && !strcmp(line, "stop"), ms * 1000);
    vdev_reset(&n->d);
    test_pass("%s %s: arp_answered=%lu icmp_answered=%lu udp_echoed=%lu rx=%lu bad=%lu", vdev_name(&n->d),
              stopped ? "stopped" : "timed out", n->arp_answered, n->icmp_answered, n->udp_echoed, n->rx_frames,
              n->rx_bad);
}
GUEST_TEST(virtio_net_responder, test_virtio_net_responder, TEST_NORMAL,
           "virtio-net: answer ARP/ICMP/UDP echo for vnet_resp_ms or until 'stop'");

/* one round: ARP, ICMP echo, UDP echo within a deadline; NULL or what failed */
static const char *pinger_round(struct net *n, uint64_t deadline, unsigned round, uint64_t port, unsigned *tries)
{
    static uint8_t payload[1500];
    n->peer_known = false;
    while (!n->peer_known) {
        if (now_us() > deadline) return "no ARP reply";
        ++*tries;
        if (!arp_send(n, 1, NULL, n->peer)) return "ARP transmit did not complete";
        NET_WAIT(n, n->peer_known, 100000);
    }
    static const unsigned isz[] = {56, 1472}, usz[] = {1, 1472};
    for (unsigned i = 0; i < 2; i++) {
        unsigned len = isz[i];
        for (unsigned j = 0; j < len; j++) payload[j] = (uint8_t)(j * 7 + round * 31 + i);
        for (uint16_t seq = (uint16_t)(round * 64 + i * 16);; seq++) {
            if (now_us() > deadline) return i ? "no ICMP echo reply (1472 bytes)" : "no ICMP echo reply (56 bytes)";
            ++*tries;
            n->echo_seen = false;
            if (!icmp_send(n, n->peer_mac, n->peer, 8, 0x5158, seq, payload, len)) return "ICMP transmit did not complete";
            if (NET_WAIT(n, n->echo_seen && n->echo_id == 0x5158 && n->echo_seq == seq, 200000)) {
                if (n->echo_len != len || memcmp(n->echo_data, payload, len)) return "ICMP echo reply differs";
                break;
            }
        }
    }
    for (unsigned i = 0; i < 2; i++) {
        unsigned len = usz[i];
        uint16_t sport = (uint16_t)(41000 + (round & 0x3ff) * 2 + i);
        for (unsigned j = 0; j < len; j++) payload[j] = (uint8_t)((j * 13) ^ round ^ i);
        for (;;) {
            if (now_us() > deadline) return i ? "no UDP echo (1472 bytes)" : "no UDP echo (1 byte)";
            ++*tries;
            n->udp_seen = false;
            if (!udp_send(n, sport, (uint16_t)port, payload, len)) return "UDP transmit did not complete";
            if (NET_WAIT(n, n->udp_seen && n->udp_dport == sport, 200000)) {
                if (n->udp_sport != port || n->udp_len != len || memcmp(n->udp_data, payload, len)) return "UDP echo differs";
                break;
            }
        }
    }
    return NULL;
}

static void test_virtio_net_pinger(void)
{
    struct net *n = &net_dev;
    char err[200], line[40];
    unsigned ll = 0, rounds = 0, fails = 0;
    uint64_t port = 7777, round_ms = 5000, idle_ms = 120000;
    cmdline_u64("vnet_udp_port", &port);
    cmdline_u64("vnet_round_ms", &round_ms);
    cmdline_u64("vnet_idle_ms", &idle_ms);
    if (!net_open(n, err, sizeof err)) return test_fail("%s", err);
    printk("NET pinger %s ip=" IPF " peer=" IPF "\n", vdev_name(&n->d), IPA(n->ip), IPA(n->peer));
    for (;;) {
        if (!NET_WAIT(n, serial_getline(line, &ll, sizeof line), idle_ms * 1000)) {
            vdev_reset(&n->d);
            return test_fail("no command on the serial port for %lu ms after %u rounds", idle_ms, rounds);
        }
        if (!strcmp(line, "end")) break;
        if (strncmp(line, "round ", 6)) continue;
        unsigned k = 0;
        for (const char *p = line + 6; *p >= '0' && *p <= '9'; p++) k = k * 10 + (unsigned)(*p - '0');
        uint64_t t0 = now_us();
        unsigned tries = 0;
        const char *e = pinger_round(n, t0 + round_ms * 1000, k, port, &tries);
        uint64_t dt = now_us() - t0;
        rounds++;
        if (e) fails++, printk("ROUND %u fail %s after %lu ms (%u sends, rx=%lu bad=%lu)\n", k, e, dt / 1000, tries, n->rx_frames, n->rx_bad);
        else printk("ROUND %u ok %lu us %u sends\n", k, dt, tries);
    }
    vdev_reset(&n->d);
    if (!rounds || fails) return test_fail("%u of %u rounds failed", fails, rounds);
    test_pass("%s %u rounds ok (ARP + ICMP 56/1472 + UDP 1/1472 each) rx=%lu bad=%lu arp_answered=%lu", vdev_name(&n->d),
              rounds, n->rx_frames, n->rx_bad, n->arp_answered);
}
GUEST_TEST(virtio_net_pinger, test_virtio_net_pinger, TEST_NORMAL,
           "virtio-net: per serial 'round K', ARP + ICMP + UDP echo with the peer; 'end' finishes");

/* ---- benchmarks -------------------------------------------------------------------------- */
#define NTX 16

static void net_bench_tx_one(struct net *n, const char *name, unsigned paylen, uint64_t ms, uint16_t dport)
{
    static uint8_t *txb;
    if (!txb) txb = dma_alloc((size_t)NTX * BUFSZ, 4096);
    if (!txb) return (void)printk("INFO bench %s: out of DMA memory\n", name);
    struct virtq *q = &n->d.q[TXQ];
    unsigned depth = q->size < NTX ? q->size : NTX;
    /* build the frame once (in n->tx with the driver's helpers), copy it to every slot */
    static uint8_t payload[1500];
    for (unsigned j = 0; j < paylen; j++) payload[j] = (uint8_t)(j * 3 + 1);
    uint8_t *ip = eth_start(n, n->peer_mac, 0x0800), *u = ip + 20;
    put16(u, 40999), put16(u + 2, dport), put16(u + 4, (uint16_t)(8 + paylen)), put16(u + 6, 0);
    memcpy(u + 8, payload, paylen);
    put16(u + 6, udp_csum(n->ip, n->peer, u, 8 + paylen));
    unsigned flen = ip_finish(n, ip, 17, n->peer, 8 + paylen);
    memset(n->tx, 0, n->hdrlen);
    if (flen < 60) memset(n->tx + n->hdrlen + flen, 0, 60 - flen), flen = 60;
    for (unsigned i = 0; i < depth; i++) memcpy(txb + (size_t)i * BUFSZ, n->tx, n->hdrlen + flen);
    uint64_t done = 0, t0 = now_us(), end = t0 + ms * 1000, last = t0;
    const uint64_t kicks0 = n->d.kicks, quiet0 = n->d.kicks_suppressed;
    unsigned inflight = 0;
    uint16_t freel[NTX];
    unsigned nfree = 0;
    for (unsigned i = 0; i < depth; i++) freel[nfree++] = (uint16_t)i;
    for (;;) {
        uint64_t t = now_us();
        if (t >= end) break;
        if (nfree) {
            while (nfree) {
                uint16_t s = freel[--nfree];
                struct vbuf v = {(uintptr_t)(txb + (size_t)s * BUFSZ), n->hdrlen + flen, false};
                vq_add_at(q, s, &v, 1);
                inflight++;
            }
            vq_kick(&n->d, TXQ);
        }
        uint32_t id, len;
        bool any = false;
        while (vq_poll(q, &id, &len)) {
            if (id < depth) freel[nfree++] = (uint16_t)id;
            inflight--, done++, any = true;
        }
        if (any) last = t;
        else if (t - last > 1000000) {
            printk("INFO bench %s: no transmit completion for 1 s after %lu frames\n", name, done);
            break;
        }
        if (!nfree) cpu_relax();
    }
    uint64_t dt = now_us() - t0;
    WAIT_US((({ uint32_t id, len; while (vq_poll(q, &id, &len)) inflight--; }), inflight == 0), 1000000);
    if (!dt || !done) return;
    printk("INFO bench %s: %lu frames of %u bytes in %lu us, %lu notifications (%lu left out: NO_NOTIFY)\n", name,
           done, flen, dt, n->d.kicks - kicks0, n->d.kicks_suppressed - quiet0);
    if (paylen >= 1000) bench_report(name, done * paylen / dt, "MBps");
    else bench_report(name, done * 1000000 / dt, "pps");
}

static void bench_virtio_net_tx(void)
{
    struct net *n = &net_dev;
    char err[200];
    uint64_t ms = 500, port = 9;
    cmdline_u64("vnet_bench_ms", &ms);
    cmdline_u64("vnet_sink_port", &port);
    if (!net_open(n, err, sizeof err)) return (void)printk("INFO bench virtio_net_tx: %s\n", err);
    const char *e = net_arp_peer(n, err, sizeof err);
    if (e) return (void)(vdev_reset(&n->d), printk("INFO bench virtio_net_tx: %s\n", e));
    net_bench_tx_one(n, "virtio_net_tx_1472", 1472, ms, (uint16_t)port);
    NET_WAIT(n, false, 100000);
    net_bench_tx_one(n, "virtio_net_tx_small", 18, ms, (uint16_t)port);
    NET_WAIT(n, false, 100000);
    vdev_reset(&n->d);
}
GUEST_TEST(virtio_net_tx, bench_virtio_net_tx, TEST_BENCH, "virtio-net UDP transmit rate (1472 and 18 bytes)");

static void bench_virtio_net_rx(void)
{
    struct net *n = &net_dev;
    char err[200];
    uint64_t port = 9, idle_ms = 500;
    cmdline_u64("vnet_sink_port", &port);
    cmdline_u64("vnet_rx_idle_ms", &idle_ms);
    if (!net_open(n, err, sizeof err)) return (void)printk("INFO bench virtio_net_rx: %s\n", err);
    n->sink_port = (uint16_t)port;
    printk("NET sink ready %s ip=" IPF " port %lu\n", vdev_name(&n->d), IPA(n->ip), port);
    uint64_t t0 = now_us();
    for (;;) {
        net_poll(n);
        uint64_t t = now_us(), lastf = n->sink_t1[0] > n->sink_t1[1] ? n->sink_t1[0] : n->sink_t1[1];
        if (n->sink_frames[0] && n->sink_frames[1] && t - lastf > idle_ms * 1000) break;
        if (t - t0 > 60000000) break;
    }
    vdev_reset(&n->d);
    printk("INFO bench virtio_net_rx: %lu notifications (%lu left out: NO_NOTIFY)\n", n->d.kicks, n->d.kicks_suppressed);
    for (unsigned k = 0; k < 2; k++) {
        uint64_t dt = n->sink_t1[k] - n->sink_t0[k];
        printk("INFO bench virtio_net_rx: class %u: %lu datagrams, %lu payload bytes in %lu us\n", k, n->sink_frames[k],
               n->sink_bytes[k], dt);
        if (n->sink_frames[k] < 2 || !dt) continue;
        if (k == 0) bench_report("virtio_net_rx_1472", n->sink_bytes[k] / dt, "MBps");
        else bench_report("virtio_net_rx_small", (n->sink_frames[k] - 1) * 1000000 / dt, "pps");
    }
}
GUEST_TEST(virtio_net_rx, bench_virtio_net_rx, TEST_BENCH, "virtio-net UDP receive rate (sink on vnet_sink_port)");
