/*
 * The sandbox zygote in C: what helper.py's zygote does, without an interpreter to copy.
 *
 * Cloning a started Python process costs page tables and copy-on-write faults for its
 * whole heap, and its setup then runs Python code that touches more; this program is a
 * few pages, so a sandbox costs what its namespaces and mounts cost the kernel.
 *
 *   luminaguard-zygote FD PARENT FILTER SYSTEM
 *
 * FD is a SOCK_SEQPACKET socket; PARENT the runner's pid (we die with it); FILTER the
 * seccomp program in hex (``seccomp.program``, built by the host); SYSTEM the host folders
 * bound read-only, separated by ':'. Each request on FD is ``KEY=VALUE... -- ARGV...``
 * joined by NUL bytes, with four descriptors attached (stdin, stdout, stderr, status);
 * the keys are helper.py's: workdir, root, uid, fsize_mib, cpu_seconds, memory_mib, pids,
 * network, cgroup, mount and env (the whole environment: the host builds it). On the
 * status pipe: ``pid N`` once PID 1 of the sandbox is cloned, ``exit CODE`` when it ends
 * (128 + the signal when killed); ``exit 125`` alone when no clone could be made.
 *
 * Mount targets, and the sources of extra mounts, are reached through descriptors opened
 * without following links, and bind mounts are made with open_tree/mount_setattr/
 * move_mount (Linux 5.12): a command of another sandbox sharing /work (or a folder
 * mounted read-write) cannot swap a folder for a link between a check and the mount. Any failure before the exec exits 125 with one line on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETUP_FAILED 125
#define MAX_REQUEST (1 << 20)
#define MAX_LIST 4096
#define LIFELINE_FD 3

#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define LG_OPEN_TREE_CLONE 1
#define LG_AT_RECURSIVE 0x8000
#define LG_MOVE_MOUNT_F_EMPTY_PATH 0x04
#define LG_MOVE_MOUNT_T_EMPTY_PATH 0x40
#define LG_ATTR_RDONLY 0x1
#define LG_ATTR_NOSUID 0x2
#define LG_ATTR_NODEV 0x4
#define KEYCTL_JOIN 1
#define SECURE_NO_ROOT 0x3F
#define CAPABILITY_VERSION_3 0x20080522

struct lg_mount_attr {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* One request, parsed: pointers into the request buffer. */
struct spec {
    const char *workdir, *root, *uid, *fsize_mib, *cpu_seconds, *memory_mib, *pids;
    int network;
    const char *cgroups[MAX_LIST];
    int n_cgroups;
    char *mounts[MAX_LIST];
    int n_mounts;
    char *env[MAX_LIST + 1];
    int n_env;
    char **argv;
};

/* The zygote's state. */
static int as_root;
static struct rlimit files;         /* what a sandbox gets back */
static int lifeline, keep_alive;    /* sandboxes see EOF on lifeline once we are gone */
static int signals;                 /* a signalfd for SIGCHLD */
static struct sock_fprog filter;
static char *system_dirs[64];
static int n_system;
static pid_t *live_pids;            /* a live sandbox's pid, and its status pipe */
static int *live_fds;
static int n_live, live_capacity;

static const char *const DEVICES[] = {"null", "zero", "full", "random", "urandom"};

/* Setup failed: one line on stderr, exit 125. In a sandbox's clone; in the zygote itself
 * only while it maps its own user namespace at start (then the zygote does not start). */
static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *format, ...)
{
    char line[1024];
    int saved = errno;
    va_list args;
    va_start(args, format);
    int n = vsnprintf(line, sizeof line - 64, format, args);
    va_end(args);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof line - 64)
        n = (int)sizeof line - 64;
    if (saved)
        n += snprintf(line + n, 64, ": %s", strerror(saved));
    dprintf(2, "luminaguard-sandbox: %s\n", line);
    _exit(SETUP_FAILED);
}

static void check(int result, const char *what, const char *target)
{
    if (result != 0)
        fail("%s%s%s", what, target ? " " : "", target ? target : "");
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        fail("open %s", path);
    ssize_t n = write(fd, text, strlen(text));
    if (n != (ssize_t)strlen(text))
        fail("write %s", path);
    close(fd);
}

/* A count of at most ``most``, in plain decimal digits (no sign, no space, no wrap). */
static long number(const char *text, const char *name, long most)
{
    char *end;
    errno = 0;
    long value = text && *text >= '0' && *text <= '9' ? strtol(text, &end, 10) : -1;
    if (value < 0 || errno || *end || value > most) {
        errno = 0;
        fail("%s: not a number of at most %ld: %s", name, most, text ? text : "(missing)");
    }
    return value;
}

/* ---------------------------------------------------------------- mounts */

/*
 * Open ``path`` below the folder ``dir`` (a descriptor), one component at a time and
 * never through a link, creating what is missing: folders on the way, and at the end a
 * folder (``folder``) or an empty file. The descriptor of the target, which must be of
 * that kind. ``shown`` names the target in errors.
 */
static int open_target(int dir, const char *path, int folder, const char *shown)
{
    char copy[4096];
    if (strlen(path) >= sizeof copy) {
        errno = ENAMETOOLONG;
        fail("mount target %s", shown);
    }
    strcpy(copy, path);
    int at = dup(dir);
    char *save = NULL;
    char *part = strtok_r(copy, "/", &save);
    while (part) {
        char *next = strtok_r(NULL, "/", &save);
        if (!strcmp(part, "..") || !strcmp(part, ".")) {
            errno = 0;
            fail("mount target %s has a '%s' component", shown, part);
        }
        struct stat st;
        if (fstatat(at, part, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
            errno = 0;
            fail("mount target %s passes through a symlink", shown);
        }
        int fd;
        if (next || folder) {
            if (mkdirat(at, part, 0755) != 0 && errno != EEXIST)
                fail("mkdir %s", shown);
            fd = openat(at, part, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
        } else {
            fd = openat(at, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0 && errno == EEXIST)
                fd = openat(at, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0)
            fail("mount target %s", shown);
        close(at);
        at = fd;
        part = next;
    }
    struct stat st;
    if (fstat(at, &st) != 0 || (folder ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) {
        errno = 0;
        fail("mount target %s is not a %s", shown, folder ? "folder" : "regular file");
    }
    return at;
}

/*
 * Open the absolute ``path`` (O_PATH) one component at a time, never through a link: a
 * mount's source may lie below another mount a sandbox writes, where a step can replace
 * a folder with a link to anywhere on the host.
 */
static int open_source(const char *path, const char *shown)
{
    char copy[4096];
    if (path[0] != '/' || strlen(path) >= sizeof copy) {
        errno = 0;
        fail("mount source %s: not an absolute path", shown);
    }
    strcpy(copy, path);
    int at = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    char *save = NULL;
    for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (!strcmp(part, "..")) {
            errno = 0;
            fail("mount source %s has a '..' component", shown);
        }
        int fd = openat(at, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
            errno = 0;
            fail("mount source %s passes through a symlink", shown);
        }
        if (fd < 0)
            fail("mount source %s", shown);
        close(at);
        at = fd;
    }
    return at;
}

/* Bind ``source`` (recursively) at ``target`` below ``root``: read-only when asked,
 * always nosuid, nodev unless it is a device. ``source`` is followed as it is when
 * ``trusted`` (the host's own folders), else reached without links (``open_source``). */
static void bind_tree(int root, const char *source, const char *target, int read_only,
                      int trusted)
{
    struct stat st;
    int from = trusted ? AT_FDCWD : open_source(source, source);
    const char *path = trusted ? source : "";
    int empty = trusted ? 0 : AT_EMPTY_PATH;
    if (fstatat(from, path, &st, empty) != 0)
        fail("mount %s", target);
    int tree = (int)syscall(SYS_open_tree, from, path,
                            LG_OPEN_TREE_CLONE | LG_AT_RECURSIVE | O_CLOEXEC | empty);
    if (tree < 0)
        fail("mount %s", target);
    if (!trusted)
        close(from);
    struct lg_mount_attr attr = {.attr_set = LG_ATTR_NOSUID};
    if (read_only)
        attr.attr_set |= LG_ATTR_RDONLY;
    if (strncmp(source, "/dev/", 5) != 0)
        attr.attr_set |= LG_ATTR_NODEV;
    if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | LG_AT_RECURSIVE, &attr,
                sizeof attr) != 0)
        fail("mount %s", target);
    int at = open_target(root, target, S_ISDIR(st.st_mode), target);
    if (syscall(SYS_move_mount, tree, "", at, "",
                LG_MOVE_MOUNT_F_EMPTY_PATH | LG_MOVE_MOUNT_T_EMPTY_PATH) != 0)
        fail("mount %s", target);
    close(at);
    close(tree);
}

/* A new file system at ``name`` in the new root (our fresh tmpfs: nothing hostile in it). */
static void mount_at(const char *root, const char *name, const char *type, unsigned long flags,
                     const char *data)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, name);
    check(mkdir(path, 0755), "mkdir", path);
    check(mount(type, path, type, flags, data), "mount", path);
}

static void system_folders(int root)
{
    char host[4096], link[4096];
    for (int i = 0; i < n_system; i++) {
        snprintf(host, sizeof host, "/%s", system_dirs[i]);
        struct stat st;
        if (lstat(host, &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            ssize_t n = readlink(host, link, sizeof link - 1);
            if (n < 0)
                fail("readlink %s", host);
            link[n] = 0;
            check(symlinkat(link, root, system_dirs[i]), "symlink", host);
        } else if (S_ISDIR(st.st_mode)) {
            bind_tree(root, host, system_dirs[i], 1, 1);
        }
    }
}

static void devices(int root)
{
    static const char *const links[][2] = {
        {"fd", "/proc/self/fd"},
        {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"},
        {"stderr", "/proc/self/fd/2"},
    };
    char source[64], target[64];
    check(mkdirat(root, "dev", 0755), "mkdir", "/dev");
    for (size_t i = 0; i < sizeof DEVICES / sizeof *DEVICES; i++) {
        snprintf(source, sizeof source, "/dev/%s", DEVICES[i]);
        snprintf(target, sizeof target, "dev/%s", DEVICES[i]);
        bind_tree(root, source, target, 0, 1);
    }
    for (size_t i = 0; i < sizeof links / sizeof *links; i++) {
        snprintf(target, sizeof target, "dev/%s", links[i][0]);
        check(symlinkat(links[i][1], root, target), "symlink", target);
    }
}

/* "SOURCE:TARGET:ro|rw" (the source may hold ':'), split in place. */
static void extra_mount(int root, char *text)
{
    char *mode = strrchr(text, ':');
    if (!mode) {
        errno = 0;
        fail("mount %s: expected SOURCE:TARGET:MODE", text);
    }
    *mode++ = 0;
    if (strcmp(mode, "ro") != 0 && strcmp(mode, "rw") != 0) {
        errno = 0;
        fail("mount %s: the mode is ro or rw, not %s", text, mode);
    }
    char *target = strrchr(text, ':');
    if (!target || target[1] != '/') {
        errno = 0;
        fail("mount %s: expected SOURCE:TARGET:MODE", text);
    }
    *target++ = 0;
    bind_tree(root, text, target, strcmp(mode, "ro") == 0, 0);
}

static void build_root(const struct spec *spec)
{
    check(mount("tmpfs", spec->root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755"),
          "mount", spec->root);
    int root = open(spec->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        fail("open %s", spec->root);
    system_folders(root);
    mount_at(spec->root, "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    devices(root);
    mount_at(spec->root, "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64m,mode=1777");
    bind_tree(root, spec->workdir, "work", 0, 1);
    for (int i = 0; i < spec->n_mounts; i++)
        extra_mount(root, spec->mounts[i]);
    close(root);
}

static void pivot(const char *root)
{
    char old[4096];
    snprintf(old, sizeof old, "%s/.old-root", root);
    check(mkdir(old, 0700), "mkdir", old);
    check((int)syscall(SYS_pivot_root, root, old), "pivot_root", NULL);
    check(chdir("/"), "chdir", "/");
    check(umount2("/.old-root", MNT_DETACH), "umount old root", NULL);
    check(rmdir("/.old-root"), "rmdir", "/.old-root");
    check(mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
          "mount", "/");
}

/* ---------------------------------------------------------------- limits, privileges */

static void set_limit(int resource, rlim_t soft, rlim_t hard, const char *name)
{
    struct rlimit limit = {soft, hard};
    check(setrlimit(resource, &limit), "setrlimit", name);
}

static void limit(const struct spec *spec)
{
    rlim_t cpu = (rlim_t)number(spec->cpu_seconds, "cpu_seconds", 1L << 40);
    set_limit(RLIMIT_CPU, cpu, cpu + 1, "cpu");
    set_limit(RLIMIT_CORE, 0, 0, "core");
    if (spec->n_cgroups == 0) { /* no cgroup enforces memory and processes */
        rlim_t size = (rlim_t)number(spec->memory_mib, "memory_mib", 1L << 40) << 20;
        rlim_t pids = (rlim_t)number(spec->pids, "pids", 1L << 30);
        set_limit(RLIMIT_AS, size, size, "memory");
        set_limit(RLIMIT_NPROC, pids, pids, "processes");
    }
    if (spec->fsize_mib) { /* /work has no disk of its own: bound each file instead */
        rlim_t size = (rlim_t)number(spec->fsize_mib, "fsize_mib", 1L << 40) << 20;
        set_limit(RLIMIT_FSIZE, size, size, "file size");
        signal(SIGXFSZ, SIG_IGN); /* a write past it fails (EFBIG), no kill */
    }
}

/* Without root on the host the sandbox is uid 0 of a user namespace: give up every
 * capability for good (bounding set, ambient, the sets, root's magic). */
static void drop_capabilities(void)
{
    check(prctl(PR_SET_SECUREBITS, SECURE_NO_ROOT, 0, 0, 0), "securebits", NULL);
    check(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient capabilities", NULL);
    for (int capability = 0; capability < 64; capability++)
        if (prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0)
            break; /* past the last capability this kernel knows */
    uint32_t header[2] = {CAPABILITY_VERSION_3, 0};
    uint32_t data[6] = {0};
    check((int)syscall(SYS_capset, header, data), "capabilities", NULL);
}

static void drop_privileges(const struct spec *spec)
{
    if (as_root) {
        long uid = spec->uid ? number(spec->uid, "uid", 0x7FFFFFFE) : 65534;
        if (uid == 0) {
            errno = 0;
            fail("uid 0: a sandbox never runs as root");
        }
        check(setgroups(0, NULL), "setgroups", NULL);
        check(setgid((gid_t)uid), "setgid", NULL);
        check(setuid((uid_t)uid), "setuid", NULL);
    } else {
        drop_capabilities();
    }
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs", NULL);
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig", NULL);
}

/* Whether the zygote died (its end of the lifeline is closed). */
static int orphaned(void)
{
    struct pollfd p = {.fd = LIFELINE_FD, .events = POLLIN};
    return poll(&p, 1, 0) != 0;
}

/* Exec argv[0], searching the sandbox's PATH for a bare name. */
static void __attribute__((noreturn)) execute(char **argv, char **env)
{
    if (strchr(argv[0], '/')) {
        execve(argv[0], argv, env);
        fail("%s", argv[0]);
    }
    const char *path = "/usr/local/bin:/usr/bin:/bin";
    for (char **e = env; *e; e++)
        if (!strncmp(*e, "PATH=", 5))
            path = *e + 5;
    char candidate[4096];
    int denied = 0;
    const char *folder = path;
    for (;;) {
        const char *end = strchrnul(folder, ':');
        int length = (int)(end - folder);
        int n = snprintf(candidate, sizeof candidate, "%.*s/%s", length ? length : 1,
                         length ? folder : ".", argv[0]);
        if (n >= (int)sizeof candidate) { /* cut short it would name another program */
            errno = ENAMETOOLONG;
            fail("%.*s/%s", length, folder, argv[0]);
        }
        execve(candidate, argv, env);
        if (errno == EACCES)
            denied = 1;
        else if (errno != ENOENT && errno != ENOTDIR)
            fail("%s", candidate);
        if (!*end)
            break;
        folder = end + 1;
    }
    if (denied) {
        errno = EACCES;
        fail("%s", argv[0]);
    }
    errno = 0;
    fail("%s: command not found in PATH %s", argv[0], path);
}

/* PID 1 of the sandbox, in its namespaces: build the root, limit, drop privileges, exec. */
static void __attribute__((noreturn)) sandbox(struct spec *spec)
{
    check(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), "mount", "/");
    check(sethostname("luminaguard", 11), "sethostname", NULL);
    build_root(spec);
    pivot(spec->root);
    check(chdir("/work"), "chdir", "/work");
    limit(spec);
    drop_privileges(spec);
    if (syscall(SYS_keyctl, KEYCTL_JOIN, NULL) < 0)
        fail("session keyring");
    if (orphaned()) {
        errno = 0;
        fail("the sandbox zygote died during setup");
    }
    close(LIFELINE_FD);
    check(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter, 0, 0), "seccomp", NULL);
    execute(spec->argv, spec->env);
}

/* ---------------------------------------------------------------- the clone */

static void map_ids(uid_t uid, gid_t gid)
{
    char map[64];
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
    write_file("/proc/self/uid_map", map);
    snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
    write_file("/proc/self/gid_map", map);
}

static void join_cgroups(const struct spec *spec)
{
    for (int i = 0; i < spec->n_cgroups; i++)
        write_file(spec->cgroups[i], "0");
}

/* In the clone: its descriptors, its session, its cgroups and namespaces; then setup. */
static void __attribute__((noreturn)) become(struct spec *spec, const int *fds)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid(); /* a session of its own: the host kills the sandbox through PID 1 */
    if (!as_root)
        map_ids(0, 0); /* root of our user namespace is the zygote's root */
    for (int target = 0; target < 3; target++)
        if (dup2(fds[target], target) < 0)
            fail("dup2");
    if (lifeline != LIFELINE_FD && dup2(lifeline, LIFELINE_FD) < 0)
        fail("dup2");
    if (syscall(SYS_close_range, LIFELINE_FD + 1, ~0U, 0) != 0)
        for (int fd = LIFELINE_FD + 1; fd < (int)files.rlim_max && fd < 65536; fd++)
            close(fd);
    check(setrlimit(RLIMIT_NOFILE, &files), "setrlimit", "files");
    check(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig", NULL);
    if (orphaned()) {
        errno = 0;
        fail("the sandbox zygote died during setup");
    }
    join_cgroups(spec);
    int flags = CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | (spec->network ? 0 : CLONE_NEWNET);
    check(unshare(flags), "unshare", NULL);
    sandbox(spec);
}

/* Whether ``text`` is ``SOURCE:TARGET:ro|rw`` with an absolute target. */
static int valid_mount(const char *text)
{
    const char *mode = strrchr(text, ':');
    if (!mode || (strcmp(mode, ":ro") != 0 && strcmp(mode, ":rw") != 0))
        return 0;
    const char *target = mode;
    while (target > text && *--target != ':')
        ;
    return *target == ':' && target[1] == '/';
}

/* Split ``KEY=VALUE... -- ARGV...`` (NUL-separated, ``length`` bytes) into ``spec``;
 * 0 when it is malformed. */
static int parse(char *message, size_t length, struct spec *spec, char **words, int room)
{
    int n = 0;
    for (size_t at = 0; at < length && n < room - 1; at += strlen(message + at) + 1)
        words[n++] = message + at;
    words[n] = NULL;
    memset(spec, 0, sizeof *spec);
    size_t consumed = 0;
    for (int i = 0; i < n; i++)
        consumed += strlen(words[i]) + 1;
    if (consumed < length)
        return 0; /* more words than room for them: refused, never cut short */
    for (int i = 0; i < n; i++) {
        char *word = words[i];
        if (!strcmp(word, "--")) {
            spec->argv = words + i + 1;
            spec->env[spec->n_env] = NULL;
            return spec->argv[0] != NULL && spec->workdir && spec->root;
        }
        char *value = strchr(word, '=');
        if (!value)
            return 0;
        *value++ = 0;
        if (spec->n_cgroups == MAX_LIST || spec->n_mounts == MAX_LIST || spec->n_env == MAX_LIST)
            return 0; /* more than a sandbox may have: refused, never cut short */
        if (!strcmp(word, "cgroup"))
            spec->cgroups[spec->n_cgroups++] = value;
        else if (!strcmp(word, "mount") && valid_mount(value))
            spec->mounts[spec->n_mounts++] = value;
        else if (!strcmp(word, "env"))
            spec->env[spec->n_env++] = value;
        else if (!strcmp(word, "workdir"))
            spec->workdir = value;
        else if (!strcmp(word, "root"))
            spec->root = value;
        else if (!strcmp(word, "uid"))
            spec->uid = value;
        else if (!strcmp(word, "fsize_mib"))
            spec->fsize_mib = value;
        else if (!strcmp(word, "cpu_seconds"))
            spec->cpu_seconds = value;
        else if (!strcmp(word, "memory_mib"))
            spec->memory_mib = value;
        else if (!strcmp(word, "pids"))
            spec->pids = value;
        else if (!strcmp(word, "network"))
            spec->network = !strcmp(value, "1");
        else
            return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- the service */

/* Write a line on a status pipe; 0 when the host closed its end (never our death). */
static int report(int fd, const char *format, long value)
{
    char line[64];
    int n = snprintf(line, sizeof line, format, value);
    return write(fd, line, (size_t)n) == n;
}

static void remember(pid_t pid, int fd)
{
    if (n_live == live_capacity) {
        int capacity = live_capacity ? live_capacity * 2 : 64;
        pid_t *pids = realloc(live_pids, (size_t)capacity * sizeof *pids);
        int *fds = realloc(live_fds, (size_t)capacity * sizeof *fds);
        if (!pids || !fds)
            abort(); /* the zygote's death kills every sandbox: nothing runs unwatched */
        live_pids = pids;
        live_fds = fds;
        live_capacity = capacity;
    }
    live_pids[n_live] = pid;
    live_fds[n_live++] = fd;
}

/* Report the exit of every sandbox that has ended, on its status pipe. */
static void reap(void)
{
    struct signalfd_siginfo info;
    while (read(signals, &info, sizeof info) == sizeof info)
        ;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        long code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
        for (int i = 0; i < n_live; i++) {
            if (live_pids[i] != pid)
                continue;
            report(live_fds[i], "exit %ld\n", code);
            close(live_fds[i]);
            live_pids[i] = live_pids[--n_live];
            live_fds[i] = live_fds[n_live];
            break;
        }
    }
}

/* Clone one sandbox for a request; report its pid, and later its exit, on fds[3]. */
static void start(char *message, size_t length, int *fds)
{
    static char *words[MAX_REQUEST / 2 + 1];
    static struct spec spec;
    fcntl(fds[3], F_SETFD, FD_CLOEXEC);
    pid_t pid = -1;
    if (!parse(message, length, &spec, words, MAX_REQUEST / 2 + 1))
        dprintf(fds[2], "luminaguard-sandbox: a malformed request\n");
    else {
        unsigned long flags = CLONE_NEWPID | SIGCHLD | (as_root ? 0 : CLONE_NEWUSER);
        pid = (pid_t)syscall(SYS_clone, flags, 0, 0, 0, 0);
        if (pid == 0)
            become(&spec, fds);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    if (pid < 0) {
        report(fds[3], "exit %ld\n", SETUP_FAILED);
        close(fds[3]);
        return;
    }
    if (!report(fds[3], "pid %ld\n", pid)) /* nobody will wait for it: end it now */
        kill(pid, SIGKILL);
    remember(pid, fds[3]); /* reaped (and its end reported, if still read) all the same */
}

/* One request: its bytes and four descriptors; 0 when the channel closed. */
static int receive(int channel, char *buffer)
{
    int fds[4];
    char control[CMSG_SPACE(sizeof fds)];
    struct iovec iov = {.iov_base = buffer, .iov_len = MAX_REQUEST};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                         .msg_controllen = sizeof control};
    ssize_t n = recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return 0;
    int got = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (got < 4)
                fds[got++] = fd;
            else
                close(fd);
        }
    }
    if (got != 4 || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) { /* not a request: drop it */
        for (int i = 0; i < got; i++)
            close(fds[i]);
        return 1;
    }
    buffer[n] = 0;
    start(buffer, (size_t)n, fds);
    return 1;
}

static void read_filter(const char *hex)
{
    size_t length = strlen(hex);
    if (length == 0 || length % 16) {
        dprintf(2, "luminaguard-zygote: the seccomp filter is not whole instructions\n");
        exit(2);
    }
    unsigned char *bytes = malloc(length / 2);
    if (!bytes)
        abort();
    for (size_t i = 0; i < length / 2; i++) {
        unsigned int byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1) {
            dprintf(2, "luminaguard-zygote: the seccomp filter is not hex\n");
            exit(2);
        }
        bytes[i] = (unsigned char)byte;
    }
    filter.len = (unsigned short)(length / 16);
    filter.filter = (struct sock_filter *)bytes;
}

static void read_system(char *list)
{
    char *save = NULL;
    for (char *name = strtok_r(list, ":", &save); name; name = strtok_r(NULL, ":", &save)) {
        if (n_system == 64) {
            dprintf(2, "luminaguard-zygote: more than 64 system folders\n");
            exit(2);
        }
        system_dirs[n_system++] = name;
    }
}

/* Not root: a user namespace of our own, where we are root and may make the sandboxes'. */
static void map_user(void)
{
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER) != 0) {
        perror("luminaguard-zygote: unshare user namespace");
        exit(SETUP_FAILED);
    }
    map_ids(uid, gid);
}

/* Descriptors 0, 1 and 2 open (to /dev/null if not): a request's always land above. */
static void standard_descriptors(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
            exit(SETUP_FAILED);
}

static void serve(int channel)
{
    static char buffer[MAX_REQUEST + 1];
    struct pollfd waiting[2] = {{.fd = channel, .events = POLLIN}, {.fd = signals, .events = POLLIN}};
    for (;;) {
        if (poll(waiting, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            exit(SETUP_FAILED);
        }
        if (waiting[1].revents)
            reap();
        if (waiting[0].revents && !receive(channel, buffer))
            exit(0);
    }
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        dprintf(2, "usage: luminaguard-zygote FD PARENT FILTER SYSTEM\n");
        return 2;
    }
    int channel = atoi(argv[1]);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != atoi(argv[2]))
        return SETUP_FAILED;
    standard_descriptors();
    read_filter(argv[3]);
    read_system(argv[4]);
    as_root = getuid() == 0;
    if (!as_root)
        map_user();
    signal(SIGPIPE, SIG_IGN); /* a status pipe the host closed fails the write, no more */
    getrlimit(RLIMIT_NOFILE, &files);
    struct rlimit most = {files.rlim_max, files.rlim_max}; /* a status pipe per sandbox */
    setrlimit(RLIMIT_NOFILE, &most);
    int pipe_ends[2];
    if (pipe2(pipe_ends, O_CLOEXEC) != 0)
        return SETUP_FAILED;
    lifeline = pipe_ends[0];
    keep_alive = pipe_ends[1];
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    sigprocmask(SIG_BLOCK, &child, NULL);
    signals = signalfd(-1, &child, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signals < 0)
        return SETUP_FAILED;
    fcntl(channel, F_SETFD, FD_CLOEXEC);
    serve(channel);
}
