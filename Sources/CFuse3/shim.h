// C shim over libfuse3's low-level API for Swift.
//
// FUSE_USE_VERSION must be defined before the header; a system-library target cannot carry
// cSettings, so it lives here. The cfuse_* wrappers give Swift one name for calls that libfuse
// maps through macros depending on its version (3.14 here; 3.17+ turns fuse_session_new into a
// macro), so the Swift code does not change with the installed libfuse.
#ifndef CFUSE3_SHIM_H
#define CFUSE3_SHIM_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

static inline struct fuse_session *cfuse_session_new(struct fuse_args *args,
                                                     const struct fuse_lowlevel_ops *op,
                                                     void *userdata) {
    return fuse_session_new(args, op, sizeof(*op), userdata);
}

/// Runs the multi-threaded loop with at most `max_threads` workers.
static inline int cfuse_session_loop_mt(struct fuse_session *se, unsigned int max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -1;
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_idle_threads(config, max_threads);
    int result = fuse_session_loop_mt(se, config);
    fuse_loop_cfg_destroy(config);
    return result;
}

/// Builds a `struct fuse_args` from a copied argv (freed by fuse_opt_free_args).
static inline struct fuse_args cfuse_args_init(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

static inline void cfuse_conn_want(struct fuse_conn_info *conn, unsigned int flag) {
    if (conn->capable & flag) conn->want |= flag;
}

static inline void cfuse_conn_unwant(struct fuse_conn_info *conn, unsigned int flag) {
    conn->want &= ~flag;
}

// Capability flags as functions: Swift does not import these macros' values reliably.
static inline unsigned int cfuse_cap_async_read(void) { return FUSE_CAP_ASYNC_READ; }
static inline unsigned int cfuse_cap_atomic_o_trunc(void) { return FUSE_CAP_ATOMIC_O_TRUNC; }
static inline unsigned int cfuse_cap_readdirplus(void) { return FUSE_CAP_READDIRPLUS; }
static inline unsigned int cfuse_cap_readdirplus_auto(void) { return FUSE_CAP_READDIRPLUS_AUTO; }
static inline unsigned int cfuse_cap_writeback_cache(void) { return FUSE_CAP_WRITEBACK_CACHE; }
static inline unsigned int cfuse_cap_auto_inval_data(void) { return FUSE_CAP_AUTO_INVAL_DATA; }

// setattr's to_set bits.
static inline int cfuse_set_attr_mode(void) { return FUSE_SET_ATTR_MODE; }
static inline int cfuse_set_attr_uid(void) { return FUSE_SET_ATTR_UID; }
static inline int cfuse_set_attr_gid(void) { return FUSE_SET_ATTR_GID; }
static inline int cfuse_set_attr_size(void) { return FUSE_SET_ATTR_SIZE; }
static inline int cfuse_set_attr_atime(void) { return FUSE_SET_ATTR_ATIME; }
static inline int cfuse_set_attr_mtime(void) { return FUSE_SET_ATTR_MTIME; }
static inline int cfuse_set_attr_atime_now(void) { return FUSE_SET_ATTR_ATIME_NOW; }
static inline int cfuse_set_attr_mtime_now(void) { return FUSE_SET_ATTR_MTIME_NOW; }

#endif
