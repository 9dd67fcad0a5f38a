// SPDX-License-Identifier: MIT OR Apache-2.0
// strahl loss injection for tests (this kernel has no netem).
//
// Contract: applies to IPv4 and IPv6 UDP packets whose destination port equals cfg.udp_port (0:
// every UDP packet); everything else (ARP, TCP, ICMP, malformed) always passes, so neighbour
// resolution and control traffic keep working. For each matching packet, with n = its index among
// matching packets since the configuration was written (state.seen, shared across CPUs):
//   1. burst pattern: if burst_period > 0 and burst_offset <= n % burst_period < burst_offset +
//      burst_len, drop (deterministic, e.g. "3 in a row every 100");
//   2. otherwise drop with probability drop_per_2_32 / 2^32 (bpf_get_prandom_u32).
// Counters: stats[LOSS_STAT_*]. User space writes `cfg` and zeroes `state` to (re)configure.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "strahl_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct strahl_loss_cfg);
} cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct strahl_loss_state);
} state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOSS_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline int count(__u32 idx, int action)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
	return action;
}

// Destination port of a UDP packet, or -1 when the packet is not (complete) IPv4/IPv6 UDP.
static __always_inline int udp_dest_port(void *data, void *end)
{
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5 || ip->protocol != IPPROTO_UDP)
			return -1;
		if (ip->frag_off & bpf_htons(0x1fff)) // later fragments carry no UDP header
			return -1;
		udp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return -1; // extension headers: not handled, pass
		udp = (void *)(ip6 + 1);
	} else {
		return -1;
	}
	if ((void *)(udp + 1) > end)
		return -1;
	return bpf_ntohs(udp->dest);
}

SEC("xdp")
int strahl_loss(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct strahl_loss_cfg *c = bpf_map_lookup_elem(&cfg, &zero);
	struct strahl_loss_state *s = bpf_map_lookup_elem(&state, &zero);

	if (!c || !s)
		return XDP_PASS;
	int port = udp_dest_port((void *)(long)ctx->data, (void *)(long)ctx->data_end);
	if (port < 0 || (c->udp_port != 0 && port != c->udp_port))
		return count(LOSS_STAT_IGNORED, XDP_PASS);

	__u64 n = __sync_fetch_and_add(&s->seen, 1);
	if (c->burst_period) {
		__u64 phase = n % c->burst_period;
		if (phase >= c->burst_offset && phase < (__u64)c->burst_offset + c->burst_len)
			return count(LOSS_STAT_DROPPED_BURST, XDP_DROP);
	}
	if (c->drop_per_2_32 && bpf_get_prandom_u32() < c->drop_per_2_32)
		return count(LOSS_STAT_DROPPED_RANDOM, XDP_DROP);
	return count(LOSS_STAT_PASSED, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
