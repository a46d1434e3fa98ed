/* Preloaded into a server by `flood --trim` (LD_PRELOAD): on SIGUSR2, calls
 * glibc's malloc_trim(0), which gives the free pages of every arena back to
 * the kernel, then creates the file named by TRIM_DONE_FILE.
 *
 * A diagnosis, not a fix: if the server's memory drops after it, what had
 * stayed after a flood was free memory kept by the allocator, not live data.
 * (`gdb -p PID -batch -ex 'call (int)malloc_trim(0)'` does the same where gdb
 * may write a process's registers; in some virtual machines it may not.)
 *
 * malloc_trim is not safe inside a signal handler, so the signal is blocked in
 * every thread (they inherit the mask set here, before main) and taken by one
 * thread of ours with sigwait, outside any handler. */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void *trim_on_each_signal(void *unused) {
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    for (;;) {
        int signal;
        if (sigwait(&usr2, &signal) != 0)
            continue;
        malloc_trim(0);
        const char *done = getenv("TRIM_DONE_FILE");
        FILE *file = done ? fopen(done, "w") : NULL;
        if (file)
            fclose(file);
    }
    return unused;
}

__attribute__((constructor)) static void start_trimmer(void) {
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    pthread_t thread;
    pthread_create(&thread, NULL, trim_on_each_signal, NULL);
}
