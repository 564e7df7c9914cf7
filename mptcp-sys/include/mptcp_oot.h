/*
 * The out-of-tree MPTCP socket API (draft-hesmans-mptcp-socket), as offered by a
 * fork of the multipath-tcp.org kernel and used by go-mptcp-api.
 *
 * Written for mptcp-sys from the layout facts recorded in the project's ABI notes;
 * no kernel release ships this header. All options live at level IPPROTO_TCP.
 */
#ifndef MPTCP_SYS_OOT_H
#define MPTCP_SYS_OOT_H

#include <linux/types.h>

/* getsockopt: list the subflow ids of a connection (struct mptcp_sub_ids). */
#define MPTCP_GET_SUB_IDS 66
/* getsockopt: force-close one subflow (struct mptcp_close_sub_id). */
#define MPTCP_CLOSE_SUB_ID 67
/* getsockopt: addresses of one subflow (struct mptcp_sub_tuple). */
#define MPTCP_GET_SUB_TUPLE 68
/* getsockopt: open a subflow between two addresses (struct mptcp_sub_tuple). */
#define MPTCP_OPEN_SUB_TUPLE 69
/* getsockopt: tcp_info of one subflow. */
#define MPTCP_GET_SUB_INFO 70
/* getsockopt: read a socket option of one subflow (struct mptcp_sub_getsockopt). */
#define MPTCP_SUB_GETSOCKOPT 71
/* setsockopt: set a socket option of one subflow (struct mptcp_sub_setsockopt). */
#define MPTCP_SUB_SETSOCKOPT 72

/* State of one subflow: its id, then five one-bit flags packed after it. */
struct mptcp_sub_status {
	__u8 id;
	__u16 slave_sk : 1,
	      fully_established : 1,
	      attached : 1,
	      low_prio : 1,
	      pre_established : 1;
};

/* Reply of MPTCP_GET_SUB_IDS: a count followed by one status per subflow. */
struct mptcp_sub_ids {
	__u8 sub_count;
	struct mptcp_sub_status sub_status[];
};

/* Argument of MPTCP_GET_SUB_TUPLE / MPTCP_OPEN_SUB_TUPLE: the subflow id, then the
 * local and the remote address (two sockaddr_in or two sockaddr_in6) back to back. */
struct mptcp_sub_tuple {
	__u8 id;
	__u8 addrs[];
};

/* Argument of MPTCP_CLOSE_SUB_ID. */
struct mptcp_close_sub_id {
	__u8 id;
};

/* Argument of MPTCP_SUB_GETSOCKOPT: which subflow, which option, where to put it. */
struct mptcp_sub_getsockopt {
	__u8 id;
	int level;
	int optname;
	char *optval;
	unsigned int *optlen;
};

/* Argument of MPTCP_SUB_SETSOCKOPT: which subflow, which option, the new value. */
struct mptcp_sub_setsockopt {
	__u8 id;
	int level;
	int optname;
	char *optval;
	unsigned int optlen;
};

#endif
