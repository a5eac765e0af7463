/* clock_nanosleep on the monotonic clock straight to the kernel: libfaketime 0.9.10 shifts an
   absolute monotonic deadline by its offset even when told to leave the monotonic clock alone
   (FAKETIME_DONT_FAKE_MONOTONIC=1), so Python's time.sleep fails with EINVAL. Preloaded before
   libfaketime, this one wins. */
#define _GNU_SOURCE
#include <time.h>
#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *request, struct timespec *remain) {
    long rc = syscall(SYS_clock_nanosleep, clock_id, flags, request, remain);
    return rc == 0 ? 0 : errno;   /* clock_nanosleep returns the error number, not -1 */
}
