/* Everything mptcp-sys binds from the kernel's UAPI headers. */
#include <sys/socket.h>
#include <linux/tcp.h>	/* tcp_info, TCP_IS_MPTCP */
#include <linux/mptcp.h>
#include <linux/sock_diag.h>	/* SOCK_DIAG_BY_FAMILY */
#include <linux/inet_diag.h>	/* inet_diag_req_v2, inet_diag_msg, INET_DIAG_*, INET_ULP_INFO_* */
#if __has_include(<linux/mptcp_pm.h>)
#include <linux/mptcp_pm.h>
#endif
