// SPDX-License-Identifier: MIT OR Apache-2.0
// strahl XDP steering program.
//
// Contract: inbound IPv4 and IPv6 UDP datagrams whose destination port is a key of `ports` are
// redirected into the AF_XDP socket registered at `xsks[rx_queue_index]`; if no socket is
// registered there, they pass to the kernel (bpf_redirect_map's fallback action). Everything else
// passes: other ports, TCP, ARP, IPv4 fragments and IPv6 packets with extension headers (the
// kernel handles them; our media never uses either), and anything truncated or malformed. Every decision is counted in `stats` (per-CPU) so user space can show it.
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
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, STRAHL_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// Keys: UDP destination ports in host byte order. Values: unused (1).
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STRAHL_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REDIRECT_STAT_COUNT);
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

SEC("xdp")
int strahl_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return count(REDIRECT_STAT_MALFORMED, XDP_PASS);
	struct udphdr *udp;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return count(REDIRECT_STAT_MALFORMED, XDP_PASS);
		if (ip->protocol != IPPROTO_UDP)
			return count(REDIRECT_STAT_PASSED, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3fff)) // MF set or non-zero offset
			return count(REDIRECT_STAT_PASSED, XDP_PASS);
		udp = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return count(REDIRECT_STAT_MALFORMED, XDP_PASS);
		// UDP directly after the fixed header only: extension headers (incl. fragments) go to
		// the kernel rather than growing an unbounded header walk here.
		if (ip6->nexthdr != IPPROTO_UDP)
			return count(REDIRECT_STAT_PASSED, XDP_PASS);
		udp = (void *)(ip6 + 1);
	} else {
		return count(REDIRECT_STAT_PASSED, XDP_PASS);
	}

	if ((void *)(udp + 1) > end)
		return count(REDIRECT_STAT_MALFORMED, XDP_PASS);

	__u16 port = bpf_ntohs(udp->dest);
	if (!bpf_map_lookup_elem(&ports, &port))
		return count(REDIRECT_STAT_PASSED, XDP_PASS);

	count(REDIRECT_STAT_REDIRECTED, XDP_PASS);
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

// Dual licence string: the programs are ours (MIT OR Apache-2.0); the kernel only accepts a
// GPL-compatible string for some helpers, and "Dual MIT/GPL" is one it recognises.
char LICENSE[] SEC("license") = "Dual MIT/GPL";
