/* Everything mptcp-sys binds from the kernel's UAPI headers. */
#include <sys/socket.h>
#include <linux/tcp.h>	/* tcp_info, TCP_IS_MPTCP */
#include <linux/mptcp.h>
#if __has_include(<linux/mptcp_pm.h>)
#include <linux/mptcp_pm.h>
#endif
