/*
 * A PKCS#11 module for tests: it forwards every call to a real module
 * (SoftHSM) and, on cue, behaves as a token that SoftHSM cannot imitate.
 *
 * SoftHSM cannot be unplugged, so the pulled-out token is modelled here, at
 * the C boundary: after SHIM_FAIL_AFTER signatures, the named call
 * (SHIM_FAIL_CALL: C_SignInit or C_Sign) and every signing call after it
 * return SHIM_FAIL_CKR (CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT,
 * CKR_SESSION_HANDLE_INVALID, ...), exactly as a vendor module answers when
 * the token is pulled out. python-pkcs11 and signkit see a real return code.
 *
 * It is also a witness and a synchronisation point for tests:
 *   SHIM_MODULE            the real module (required)
 *   SHIM_SIGN_LOG          one line per signature the token made ("sign <pid>"),
 *                          and "barrier <pid> <parties seen>" lines
 *   SHIM_BARRIER_DIR       at its first C_SignInit, each process waits until
 *   SHIM_BARRIER_PARTIES   that many processes are at theirs (two runs signing
 *                          at the same moment, proved rather than hoped for)
 *   SHIM_HOLD_AT           the Nth C_SignInit of the process waits, after
 *   SHIM_HOLD_FILE         creating this file, until SHIM_RELEASE_FILE exists
 *   SHIM_RELEASE_FILE      (for ever without it): a signal at a known point
 *
 * No PKCS#11 header is needed: CK_FUNCTION_LIST is a CK_VERSION followed by
 * 68 function pointers in the order of the standard (v2.40).
 */
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef unsigned long CK_RV;
typedef unsigned long CK_ULONG;

#define N_FUNCTIONS 68
#define I_SIGN_INIT 42
#define I_SIGN 43
#define CKR_GENERAL_ERROR 0x5UL

struct function_list {
    unsigned char version[2];
    void *fn[N_FUNCTIONS];
};

typedef CK_RV (*get_list_fn)(struct function_list **);
typedef CK_RV (*sign_init_fn)(CK_ULONG, void *, CK_ULONG);
typedef CK_RV (*sign_fn)(CK_ULONG, unsigned char *, CK_ULONG, unsigned char *, CK_ULONG *);

static struct function_list ours;
static struct function_list *real;
static long signatures;
static long sign_inits;
static int failing;
static int barrier_passed;

static long env_long(const char *name, long otherwise) {
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 0) : otherwise;
}

static void log_line(const char *what, long value) {
    const char *path = getenv("SHIM_SIGN_LOG");
    if (!path || !*path) return;
    char line[96];
    int n = snprintf(line, sizeof line, "%s %ld %ld\n", what, (long)getpid(), value);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (fd < 0) return;
    if (write(fd, line, (size_t)n) != n) { /* the test sees a short log */ }
    close(fd);
}

static int entries(const char *dir) {
    int count = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') count++;
    closedir(d);
    return count;
}

static void barrier(void) {
    const char *dir = getenv("SHIM_BARRIER_DIR");
    if (barrier_passed || !dir || !*dir) return;
    barrier_passed = 1;
    long parties = env_long("SHIM_BARRIER_PARTIES", 2);
    char mine[4096];
    snprintf(mine, sizeof mine, "%s/%ld", dir, (long)getpid());
    int fd = open(mine, O_WRONLY | O_CREAT, 0600);
    if (fd >= 0) close(fd);
    struct timespec step = {0, 5 * 1000 * 1000};
    int seen = entries(dir);
    /* at most 120 s: a party that never comes fails the test, not the machine */
    for (int i = 0; i < 24000 && seen < parties; i++) {
        nanosleep(&step, NULL);
        seen = entries(dir);
    }
    log_line("barrier", seen);
}

static int fail_now(const char *call) {
    const char *which = getenv("SHIM_FAIL_CALL");
    long after = env_long("SHIM_FAIL_AFTER", -1);
    if (!failing && after >= 0 && signatures >= after && which && strcmp(which, call) == 0)
        failing = 1;
    return failing;
}

static CK_RV shim_sign_init(CK_ULONG session, void *mechanism, CK_ULONG key) {
    barrier();
    sign_inits++;
    if (sign_inits == env_long("SHIM_HOLD_AT", -1)) {
        const char *flag = getenv("SHIM_HOLD_FILE");
        if (flag && *flag) {
            int fd = open(flag, O_WRONLY | O_CREAT, 0600);
            if (fd >= 0) close(fd);
        }
        const char *release = getenv("SHIM_RELEASE_FILE");
        struct timespec step = {0, 5 * 1000 * 1000};
        while (!(release && *release && access(release, F_OK) == 0)) {
            if (release && *release)
                nanosleep(&step, NULL);
            else
                pause();
        }
    }
    if (fail_now("C_SignInit")) return (CK_RV)env_long("SHIM_FAIL_CKR", CKR_GENERAL_ERROR);
    return ((sign_init_fn)real->fn[I_SIGN_INIT])(session, mechanism, key);
}

static CK_RV shim_sign(CK_ULONG session, unsigned char *data, CK_ULONG len, unsigned char *sig,
                       CK_ULONG *sig_len) {
    if (fail_now("C_Sign")) return (CK_RV)env_long("SHIM_FAIL_CKR", CKR_GENERAL_ERROR);
    CK_RV rv = ((sign_fn)real->fn[I_SIGN])(session, data, len, sig, sig_len);
    if (rv == 0 && sig != NULL) {
        signatures++;
        log_line("sign", signatures);
    }
    return rv;
}

CK_RV C_GetFunctionList(struct function_list **out) {
    if (real == NULL) {
        const char *path = getenv("SHIM_MODULE");
        void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
        get_list_fn get = lib ? (get_list_fn)dlsym(lib, "C_GetFunctionList") : NULL;
        if (get == NULL || get(&real) != 0 || real == NULL) return CKR_GENERAL_ERROR;
        memcpy(&ours, real, sizeof ours);
        ours.fn[I_SIGN_INIT] = (void *)shim_sign_init;
        ours.fn[I_SIGN] = (void *)shim_sign;
    }
    *out = &ours;
    return 0;
}
