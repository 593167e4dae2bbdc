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
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

static inline struct fuse_session *cfuse_session_new(struct fuse_args *args,
                                                     const struct fuse_lowlevel_ops *op,
                                                     void *userdata) {
    return fuse_session_new(args, op, sizeof(*op), userdata);
}

// MARK: The request loop
//
// libfuse's own multi-threaded loop cannot be stopped from outside: its workers sit in read(2) on
// /dev/fuse until a request or the end of the connection arrives, so a busy mount would keep
// serving after an unmount was asked for. This loop's workers wait in epoll on the device (one
// worker woken per request: EPOLLEXCLUSIVE) and on a wake-up eventfd (all woken): writing the
// eventfd stops them all at once, between requests. Each worker owns its request buffer.

struct cfuse_worker {
    struct fuse_session *se;
    int wake_fd;
    int result;
};

static inline void *cfuse_worker_main(void *argument) {
    struct cfuse_worker *worker = (struct cfuse_worker *)argument;
    prctl(PR_SET_NAME, "fuse-worker", 0, 0, 0);
    struct fuse_buf buffer;
    memset(&buffer, 0, sizeof(buffer));
    int result = 0;
    int poller = epoll_create1(EPOLL_CLOEXEC);
    if (poller < 0) {
        result = -errno;
    } else {
        struct epoll_event device = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data = {.u32 = 0}};
        struct epoll_event wake = {.events = EPOLLIN, .data = {.u32 = 1}};
        if (epoll_ctl(poller, EPOLL_CTL_ADD, fuse_session_fd(worker->se), &device) < 0 ||
            epoll_ctl(poller, EPOLL_CTL_ADD, worker->wake_fd, &wake) < 0) {
            result = -errno;
        }
        while (result == 0 && !fuse_session_exited(worker->se)) {
            struct epoll_event events[2];
            int count = epoll_wait(poller, events, 2, -1);
            if (count < 0) {
                if (errno == EINTR) continue;
                result = -errno;
                break;
            }
            int stop = 0;
            for (int i = 0; i < count; i++) stop |= events[i].data.u32 == 1;
            if (stop) break;
            int received = fuse_session_receive_buf(worker->se, &buffer);
            if (received == -EINTR || received == -EAGAIN) continue;
            if (received <= 0) {
                // 0: the connection ended (libfuse marked the session exited); < 0: a failure.
                result = received;
                break;
            }
            fuse_session_process_buf(worker->se, &buffer);
        }
        close(poller);
    }
    free(buffer.mem);
    worker->result = result;
    // Whatever ended this worker ends the others.
    uint64_t one = 1;
    ssize_t written = write(worker->wake_fd, &one, sizeof(one));
    (void)written;
    return NULL;
}

/// An eventfd that stops `cfuse_loop_run` when written (see `cfuse_wake`).
static inline int cfuse_wake_create(void) { return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK); }

/// Stops the loop's workers (each finishes the request it is processing).
static inline void cfuse_wake(int wake_fd) {
    uint64_t one = 1;
    ssize_t written = write(wake_fd, &one, sizeof(one));
    (void)written;
}

/// Serves requests on `threads` workers until the connection ends or `wake_fd` is written;
/// returns 0, or the first worker's -errno.
static inline int cfuse_loop_run(struct fuse_session *se, unsigned int threads, int wake_fd) {
    int device = fuse_session_fd(se);
    // Non-blocking: a worker that loses the race for a request gets EAGAIN, not a blocked read.
    if (fcntl(device, F_SETFL, fcntl(device, F_GETFL) | O_NONBLOCK) < 0) return -errno;
    if (threads == 0) threads = 1;
    if (threads > 64) threads = 64;
    struct cfuse_worker workers[64];
    pthread_t ids[64];
    unsigned int started = 0;
    int result = 0;
    for (; started < threads; started++) {
        workers[started].se = se;
        workers[started].wake_fd = wake_fd;
        workers[started].result = 0;
        int error = pthread_create(&ids[started], NULL, cfuse_worker_main, &workers[started]);
        if (error != 0) {
            result = -error;
            cfuse_wake(wake_fd);
            break;
        }
    }
    for (unsigned int i = 0; i < started; i++) {
        pthread_join(ids[i], NULL);
        if (result == 0 && workers[i].result < 0) result = workers[i].result;
    }
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

/// `O_DIRECT` (glibc defines it only under _GNU_SOURCE).
static inline int cfuse_o_direct(void) { return __O_DIRECT; }

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
