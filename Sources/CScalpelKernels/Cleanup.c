// Interruption cleanup and SIGBUS reporting; see ScalpelCleanup.h.
#define _GNU_SOURCE
#include "ScalpelCleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMP_SLOTS 4096
#define MAP_SLOTS 1024
#define MESSAGE_BYTES 1536

typedef struct {
    char *path;     // strdup'd; NULL when the slot is free
    int is_folder;
} temp_slot;

typedef struct {
    uintptr_t start;  // 0 when free
    uintptr_t end;
    char message[MESSAGE_BYTES];  // inline: no allocation, nothing for a handler to find freed
} map_slot;

static pthread_mutex_t temp_lock = PTHREAD_MUTEX_INITIALIZER;
static temp_slot temps[TEMP_SLOTS];
static pthread_mutex_t map_lock = PTHREAD_MUTEX_INITIALIZER;
static map_slot maps[MAP_SLOTS];
static int signal_pipe[2] = {-1, -1};
static struct sigaction previous_bus;

static int register_temp(const char *path, int is_folder) {
    for (int i = 0; i < TEMP_SLOTS; i++) {
        if (temps[i].path == NULL) {
            temps[i].path = strdup(path);
            temps[i].is_folder = is_folder;
            return temps[i].path ? i : -1;
        }
    }
    return -1;
}

int scalpel_temp_create_file(char *template_path, int *slot) {
    pthread_mutex_lock(&temp_lock);
    int fd = mkostemp(template_path, O_CLOEXEC);
    int saved = errno;
    *slot = fd >= 0 ? register_temp(template_path, 0) : -1;
    pthread_mutex_unlock(&temp_lock);
    errno = saved;
    return fd;
}

int scalpel_temp_create_anonymous(const char *folder, char *template_path) {
    int fd = open(folder, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    // No O_TMPFILE here (an old kernel, or a file system without it): a name that lives only while the
    // lock keeps the cleanup thread away.
    pthread_mutex_lock(&temp_lock);
    fd = mkostemp(template_path, O_CLOEXEC);
    int saved = errno;
    if (fd >= 0) unlink(template_path);
    pthread_mutex_unlock(&temp_lock);
    errno = saved;
    return fd;
}

int scalpel_temp_create_folder(char *template_path, int *slot) {
    pthread_mutex_lock(&temp_lock);
    char *p = mkdtemp(template_path);
    int saved = errno;
    *slot = p ? register_temp(template_path, 1) : -1;
    pthread_mutex_unlock(&temp_lock);
    errno = saved;
    return p ? 0 : -1;
}

static void forget_locked(int slot) {
    if (slot < 0 || slot >= TEMP_SLOTS) return;
    free(temps[slot].path);
    temps[slot].path = NULL;
}

int scalpel_temp_commit(int slot, const char *from, const char *to) {
    pthread_mutex_lock(&temp_lock);
    int r = rename(from, to);
    int saved = errno;
    if (r == 0) forget_locked(slot);
    pthread_mutex_unlock(&temp_lock);
    errno = saved;
    return r;
}

void scalpel_temp_forget(int slot) {
    pthread_mutex_lock(&temp_lock);
    forget_locked(slot);
    pthread_mutex_unlock(&temp_lock);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}

static int remove_all_locked(void) {
    int n = 0;
    for (int i = 0; i < TEMP_SLOTS; i++) {
        if (temps[i].path == NULL) continue;
        if (temps[i].is_folder) {
            nftw(temps[i].path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        } else {
            unlink(temps[i].path);
        }
        n++;
        forget_locked(i);
    }
    return n;
}

int scalpel_temp_remove_all(void) {
    pthread_mutex_lock(&temp_lock);
    int n = remove_all_locked();
    pthread_mutex_unlock(&temp_lock);
    return n;
}

int scalpel_mapping_register(const void *start, size_t length, const char *message) {
    if (start == NULL || length == 0) return -1;
    pthread_mutex_lock(&map_lock);
    int slot = -1;
    for (int i = 0; i < MAP_SLOTS; i++) {
        if (__atomic_load_n(&maps[i].start, __ATOMIC_ACQUIRE) == 0) {
            size_t n = strlen(message);
            if (n < MESSAGE_BYTES) {
                memcpy(maps[i].message, message, n + 1);
            } else {  // a very long path: cut, keep the newline
                memcpy(maps[i].message, message, MESSAGE_BYTES - 5);
                memcpy(maps[i].message + MESSAGE_BYTES - 5, "...\n", 5);
            }
            maps[i].end = (uintptr_t)start + length;
            __atomic_store_n(&maps[i].start, (uintptr_t)start, __ATOMIC_RELEASE);
            slot = i;
            break;
        }
    }
    pthread_mutex_unlock(&map_lock);
    return slot;
}

void scalpel_mapping_forget(int slot) {
    if (slot < 0 || slot >= MAP_SLOTS) return;
    pthread_mutex_lock(&map_lock);
    __atomic_store_n(&maps[slot].start, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&map_lock);
}

static int find_mapping(uintptr_t a) {
    for (int i = 0; i < MAP_SLOTS; i++) {
        uintptr_t s = __atomic_load_n(&maps[i].start, __ATOMIC_ACQUIRE);
        if (s != 0 && a >= s && a < maps[i].end) return i;
    }
    return -1;
}

int scalpel_mapping_slot(const void *address) {
    return find_mapping((uintptr_t)address);
}

const char *scalpel_mapping_message(const void *address) {
    int i = find_mapping((uintptr_t)address);
    return i >= 0 ? maps[i].message : NULL;
}

/// One record from a handler to the cleanup thread.
typedef struct {
    int signal;
    int mapping;
} record;

static void write_all(int fd, const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

static void *cleanup_thread(void *arg) {
    (void)arg;
    record r;
    for (;;) {
        ssize_t n = read(signal_pipe[0], &r, sizeof r);
        if (n == (ssize_t)sizeof r) break;
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return NULL;
    }
    pthread_mutex_lock(&temp_lock);  // held until _exit: no new temporary can appear
    if (r.signal == SIGBUS) {
        write_all(2, maps[r.mapping].message);
        remove_all_locked();
        _exit(1);
    }
    remove_all_locked();
    write_all(2, r.signal == SIGINT ? "scalpel: interrupted\n" : "scalpel: terminated\n");
    _exit(128 + r.signal);
}

static void on_terminate(int sig) {
    int saved = errno;
    record r = {sig, -1};
    ssize_t ignored = write(signal_pipe[1], &r, sizeof r);
    (void)ignored;
    errno = saved;
}

static void on_bus(int sig, siginfo_t *info, void *context) {
    (void)context;
    int i = find_mapping((uintptr_t)info->si_addr);
    if (i < 0) {
        // Not a mapped input: let the previous handler (or the default action) have it.
        sigaction(SIGBUS, &previous_bus, NULL);
        return;
    }
    record r = {sig, i};
    ssize_t ignored = write(signal_pipe[1], &r, sizeof r);
    (void)ignored;
    for (;;) pause();  // the cleanup thread exits the process
}

static pthread_once_t installed = PTHREAD_ONCE_INIT;

static void install(void) {
    if (pipe2(signal_pipe, O_CLOEXEC) != 0) return;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);  // the cleanup thread takes no signal itself
    pthread_t t;
    int ok = pthread_create(&t, &attr, cleanup_thread, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (!ok) return;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_terminate;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    struct sigaction bus;
    memset(&bus, 0, sizeof bus);
    sigemptyset(&bus.sa_mask);
    bus.sa_sigaction = on_bus;
    bus.sa_flags = SA_SIGINFO;
    sigaction(SIGBUS, &bus, &previous_bus);
}

void scalpel_install_signal_handlers(void) {
    pthread_once(&installed, install);
}
