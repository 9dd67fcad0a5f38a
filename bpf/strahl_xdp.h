/* SPDX-License-Identifier: MIT OR Apache-2.0 */
/* Shared between the XDP programs and strahl-net (src/bpf.rs mirrors these values). */
#ifndef STRAHL_XDP_H
#define STRAHL_XDP_H

#define STRAHL_MAX_QUEUES 64
#define STRAHL_MAX_PORTS 64

enum redirect_stat {
	REDIRECT_STAT_REDIRECTED = 0, /* matched a port, handed to bpf_redirect_map */
	REDIRECT_STAT_PASSED = 1,     /* not ours: passed to the kernel */
	REDIRECT_STAT_MALFORMED = 2,  /* truncated or bad header: passed */
	REDIRECT_STAT_COUNT = 3,
};

enum loss_stat {
	LOSS_STAT_PASSED = 0,
	LOSS_STAT_DROPPED_RANDOM = 1,
	LOSS_STAT_DROPPED_BURST = 2,
	LOSS_STAT_IGNORED = 3, /* not matching UDP: always passed */
	LOSS_STAT_COUNT = 4,
};

struct strahl_loss_cfg {
	__u32 drop_per_2_32; /* drop probability scaled to 2^32 (0: never) */
	__u32 burst_period;  /* 0: no burst pattern */
	__u32 burst_offset;
	__u32 burst_len;
	__u16 udp_port;      /* 0: every UDP packet */
	__u16 _pad;
};

struct strahl_loss_state {
	__u64 seen; /* matching packets since (re)configuration */
};

#endif
