// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Makes the TCP sockets that processes of one cgroup (and of the cgroups below it)
// create MPTCP sockets, through the kernel's update_socket_protocol hook (Linux 6.6+):
// socket(2) asks that function which protocol to create, and an fmod_ret program
// attached to it may answer instead of it. Loaded and attached by mptcp-bpf (lib.rs),
// which puts the cgroup in slot 0 of `cgroups`.
//
// No kernel header is included: the few constants used are the kernel's ABI, written
// here, so the program builds with clang alone and libbpf's own helper headers.

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
/* The socket type's own bits; SOCK_NONBLOCK and SOCK_CLOEXEC sit above them. */
#define SOCK_TYPE_MASK 0xf
#define IPPROTO_TCP 6
#define IPPROTO_MPTCP 262
#define MAP_TYPE_CGROUP_ARRAY 8

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

/* How many sockets this program made MPTCP (read by user space from .bss). */
__u64 converted = 0;

SEC("fmod_ret/update_socket_protocol")
int BPF_PROG(mptcp_for_tcp, int family, int type, int protocol, int ret)
{
	/* Another fmod_ret program attached before this one already answered. */
	if (ret != 0)
		return ret;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if ((type & SOCK_TYPE_MASK) != SOCK_STREAM)
		return 0;
	if (protocol != 0 && protocol != IPPROTO_TCP)
		return 0;
	/* 1: the current task is in the cgroup of slot 0 or below it. */
	if (bpf_current_task_under_cgroup(&cgroups, 0) != 1)
		return 0;
	__sync_fetch_and_add(&converted, 1);
	/* Not 0: the kernel's own function is skipped and this is its answer. */
	return IPPROTO_MPTCP;
}
