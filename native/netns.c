/*
 * qubes-fakeip native helper: the few system calls Node cannot make.
 *
 * Why native code (DESIGN.md "The data plane", issue 5): Node has no setns(2),
 * unshare(2) or mount(2), so without this every step inside a NAT namespace
 * cost a process (`ip netns add`, `ip -n NS -batch`, `nsenter nft -f`,
 * `ip netns del`), 5-10 ms each on the critical path of a VM's bring-up,
 * while the kernel work itself takes a fraction of a millisecond. No kept npm
 * package offers these calls, so they are here, and only these:
 *
 *   setns(fd)               the calling (main) thread joins a network
 *                           namespace; used around a synchronous socket()
 *                           (netlink) so the socket belongs to that namespace
 *                           for the rest of its life;
 *   createNetns(path, sysctls)
 *                           `ip netns add`: a new network namespace, kept
 *                           alive by a bind mount at `path` (on a worker
 *                           thread, which returns to its own namespace), with
 *                           `sysctls` ([name under /proc/sys, value] pairs)
 *                           written inside it first, so devices that arrive
 *                           later inherit the namespace's defaults;
 *   deleteNetns(path)       `ip netns del`: lazy unmount and unlink; the
 *                           kernel destroys the namespace once unused;
 *   nftRun(script, fd)      one nft script as one transaction through
 *                           libnftables (the library `nft` itself is), in the
 *                           namespace of `fd` (-1: the agent's own), on a
 *                           worker thread; resolves with what nft printed (a
 *                           `list` command's text), rejects with its message.
 *
 * libnftables is opened with dlopen at first use, so building this needs no
 * nftables headers and loading it does not need nftables installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdbool.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define NETNS_RUN_DIR "/run/netns"
#define ERR_SIZE 4096

/* ---- small N-API helpers ---------------------------------------------- */

static napi_value throw_errno(napi_env env, const char *what, const char *arg, int err) {
  char message[ERR_SIZE];
  snprintf(message, sizeof message, "Cannot %s \"%s\": %s", what, arg, strerror(err));
  napi_throw_error(env, NULL, message);
  return NULL;
}

/* Copies a string argument into a fresh buffer; NULL (and a thrown error) on a non-string. */
static char *string_arg(napi_env env, napi_value value, const char *name) {
  size_t length = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &length) != napi_ok) {
    char message[128];
    snprintf(message, sizeof message, "%s must be a string", name);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  char *text = malloc(length + 1);
  if (text == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, value, text, length + 1, &length);
  if (strlen(text) != length) {
    free(text);
    char message[128];
    snprintf(message, sizeof message, "%s must not contain NUL", name);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  return text;
}

/* ---- namespace switching ---------------------------------------------- */

/* The calling thread's own network namespace, to come back to. */
static int open_own_netns(void) { return open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC); }

/* Returning must not fail: a worker thread left in another namespace would
 * create later sockets (DNS lookups run on these threads) in the wrong place. */
static void return_to(int own) {
  if (setns(own, CLONE_NEWNET) != 0) {
    fprintf(stderr, "qubes-fakeip native: cannot return to the agent's network namespace: %s\n",
            strerror(errno));
    abort();
  }
  close(own);
}

static napi_value js_setns(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "setns: fd must be a non-negative integer");
    return NULL;
  }
  if (setns(fd, CLONE_NEWNET) != 0) {
    char arg[32];
    snprintf(arg, sizeof arg, "fd %d", fd);
    return throw_errno(env, "join the network namespace of", arg, errno);
  }
  return NULL;
}

/* ---- createNetns / deleteNetns (iproute2's netns_add / netns_delete) --- */

/* /run/netns must be a shared mount so namespaces made here show in every mount namespace. */
static int prepare_run_dir(char *err) {
  static int prepared;
  if (prepared) return 0;
  if (mkdir(NETNS_RUN_DIR, 0755) != 0 && errno != EEXIST) {
    snprintf(err, ERR_SIZE, "Cannot create \"%s\": %s", NETNS_RUN_DIR, strerror(errno));
    return -1;
  }
  for (int tries = 0; tries < 2; tries++) {
    if (mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC, NULL) == 0) {
      prepared = 1;
      return 0;
    }
    if (errno != EINVAL || tries > 0) break;
    /* not a mount point yet: bind it onto itself, then make it shared */
    if (mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC, NULL) != 0) break;
  }
  snprintf(err, ERR_SIZE, "Cannot make \"%s\" a shared mount: %s", NETNS_RUN_DIR, strerror(errno));
  return -1;
}

#define MAX_SYSCTLS 8

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *path;
  char *script;
  int fd;
  int failed;
  char *output;
  size_t sysctl_count;
  char *sysctl_name[MAX_SYSCTLS];
  char *sysctl_value[MAX_SYSCTLS];
  char err[ERR_SIZE];
} job_t;

/* Writes /proc/sys/NAME in the calling thread's network namespace; a missing
 * file (IPv6 disabled, say) is not an error. */
static int write_sysctl(const char *name, const char *value, char *err) {
  char path[512];
  snprintf(path, sizeof path, "/proc/sys/%s", name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, ERR_SIZE, "Cannot open sysctl \"%s\": %s", name, strerror(errno));
    return -1;
  }
  size_t length = strlen(value);
  ssize_t written = write(fd, value, length);
  int write_errno = errno;
  close(fd);
  if (written != (ssize_t)length) {
    snprintf(err, ERR_SIZE, "Cannot set sysctl \"%s\" to \"%s\": %s", name, value,
             written < 0 ? strerror(write_errno) : "short write");
    return -1;
  }
  return 0;
}

static void create_execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  if (prepare_run_dir(job->err) != 0) {
    job->failed = 1;
    return;
  }
  int file = open(job->path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
  if (file < 0) {
    snprintf(job->err, ERR_SIZE, "Cannot create network namespace file \"%s\": %s", job->path,
             strerror(errno));
    job->failed = 1;
    return;
  }
  close(file);
  int own = open_own_netns();
  if (own < 0) {
    snprintf(job->err, ERR_SIZE, "Cannot open the thread's network namespace: %s", strerror(errno));
    unlink(job->path);
    job->failed = 1;
    return;
  }
  if (unshare(CLONE_NEWNET) != 0) {
    snprintf(job->err, ERR_SIZE, "Cannot create network namespace \"%s\": %s", job->path,
             strerror(errno));
    close(own);
    unlink(job->path);
    job->failed = 1;
    return;
  }
  for (size_t i = 0; i < job->sysctl_count; i++) {
    if (write_sysctl(job->sysctl_name[i], job->sysctl_value[i], job->err) != 0) {
      /* the namespace was never bound: it disappears with this thread's reference */
      return_to(own);
      unlink(job->path);
      job->failed = 1;
      return;
    }
  }
  int mounted = mount("/proc/thread-self/ns/net", job->path, "none", MS_BIND, NULL);
  int mount_errno = errno;
  return_to(own);
  if (mounted != 0) {
    snprintf(job->err, ERR_SIZE, "Cannot bind network namespace to \"%s\": %s", job->path,
             strerror(mount_errno));
    unlink(job->path);
    job->failed = 1;
  }
}

/* ---- nftRun: libnftables on a worker thread ---------------------------- */

struct nft_ctx;
static struct {
  struct nft_ctx *(*ctx_new)(uint32_t);
  void (*ctx_free)(struct nft_ctx *);
  int (*buffer_output)(struct nft_ctx *);
  int (*buffer_error)(struct nft_ctx *);
  const char *(*get_error)(struct nft_ctx *);
  const char *(*get_output)(struct nft_ctx *);
  int (*run)(struct nft_ctx *, const char *);
  int loaded;
  char why[512];
} nft;
/* libnftables keeps process-wide state (its parser's symbol tables); one transaction at a time */
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;

static int load_nft(void) {
  if (nft.loaded) return nft.loaded > 0 ? 0 : -1;
  void *lib = dlopen("libnftables.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    snprintf(nft.why, sizeof nft.why, "Cannot load libnftables.so.1 (package libnftables1): %s", dlerror());
    nft.loaded = -1;
    return -1;
  }
  *(void **)&nft.ctx_new = dlsym(lib, "nft_ctx_new");
  *(void **)&nft.ctx_free = dlsym(lib, "nft_ctx_free");
  *(void **)&nft.buffer_output = dlsym(lib, "nft_ctx_buffer_output");
  *(void **)&nft.buffer_error = dlsym(lib, "nft_ctx_buffer_error");
  *(void **)&nft.get_error = dlsym(lib, "nft_ctx_get_error_buffer");
  *(void **)&nft.get_output = dlsym(lib, "nft_ctx_get_output_buffer");
  *(void **)&nft.run = dlsym(lib, "nft_run_cmd_from_buffer");
  if (!nft.ctx_new || !nft.ctx_free || !nft.buffer_output || !nft.buffer_error || !nft.get_error ||
      !nft.get_output || !nft.run) {
    snprintf(nft.why, sizeof nft.why, "libnftables.so.1 lacks a function this agent uses");
    nft.loaded = -1;
    return -1;
  }
  nft.loaded = 1;
  return 0;
}

static void nft_execute(napi_env env, void *data) {
  (void)env;
  job_t *job = data;
  pthread_mutex_lock(&nft_lock);
  if (load_nft() != 0) {
    snprintf(job->err, ERR_SIZE, "%s", nft.why);
    job->failed = 1;
    pthread_mutex_unlock(&nft_lock);
    return;
  }
  int own = -1;
  if (job->fd >= 0) {
    own = open_own_netns();
    if (own < 0 || setns(job->fd, CLONE_NEWNET) != 0) {
      snprintf(job->err, ERR_SIZE, "Cannot enter the network namespace for nft: %s", strerror(errno));
      if (own >= 0) close(own);
      job->failed = 1;
      pthread_mutex_unlock(&nft_lock);
      return;
    }
  }
  /* the context (and its netlink socket) is made inside the namespace */
  struct nft_ctx *ctx = nft.ctx_new(0);
  if (ctx == NULL) {
    snprintf(job->err, ERR_SIZE, "Cannot create an nft context");
    job->failed = 1;
  } else {
    nft.buffer_output(ctx);
    nft.buffer_error(ctx);
    if (nft.run(ctx, job->script) != 0) {
      const char *text = nft.get_error(ctx);
      snprintf(job->err, ERR_SIZE, "%s", text != NULL && text[0] != '\0' ? text : "nft failed");
      job->failed = 1;
    } else {
      const char *text = nft.get_output(ctx);
      job->output = strdup(text != NULL ? text : "");
    }
    nft.ctx_free(ctx);
  }
  if (own >= 0) return_to(own);
  pthread_mutex_unlock(&nft_lock);
}

/* ---- promise plumbing --------------------------------------------------- */

static void free_job(job_t *job);

static void complete(napi_env env, napi_status status, void *data) {
  (void)status;
  job_t *job = data;
  if (job->failed) {
    napi_value message, error;
    size_t length = strlen(job->err);
    while (length > 0 && (job->err[length - 1] == '\n' || job->err[length - 1] == ' ')) length--;
    napi_create_string_utf8(env, job->err, length, &message);
    napi_create_error(env, NULL, message, &error);
    napi_reject_deferred(env, job->deferred, error);
  } else if (job->output != NULL) {
    napi_value output;
    napi_create_string_utf8(env, job->output, NAPI_AUTO_LENGTH, &output);
    napi_resolve_deferred(env, job->deferred, output);
  } else {
    napi_value undefined;
    napi_get_undefined(env, &undefined);
    napi_resolve_deferred(env, job->deferred, undefined);
  }
  napi_delete_async_work(env, job->work);
  free(job->script);
  free(job->output);
  free_job(job);
}

static napi_value start(napi_env env, job_t *job, napi_async_execute_callback execute, const char *name) {
  napi_value promise, resource_name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, NULL, resource_name, execute, complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

/* The first argument, a required string; NULL (and a thrown error) when absent or not one. */
static char *required_string(napi_env env, size_t argc, napi_value *argv, const char *what) {
  if (argc < 1) {
    char message[128];
    snprintf(message, sizeof message, "%s is required", what);
    napi_throw_type_error(env, NULL, message);
    return NULL;
  }
  return string_arg(env, argv[0], what);
}

static job_t *new_job(napi_env env) {
  job_t *job = calloc(1, sizeof *job);
  if (job == NULL) napi_throw_error(env, NULL, "out of memory");
  return job;
}

static void free_job(job_t *job) {
  free(job->path);
  for (size_t i = 0; i < job->sysctl_count; i++) {
    free(job->sysctl_name[i]);
    free(job->sysctl_value[i]);
  }
  free(job);
}

static napi_value js_create_netns(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = required_string(env, argc, argv, "createNetns: path");
  if (path == NULL) return NULL;
  job_t *job = new_job(env);
  if (job == NULL) {
    free(path);
    return NULL;
  }
  job->path = path;
  job->fd = -1;
  bool is_array = false;
  if (argc >= 2 && napi_is_array(env, argv[1], &is_array) == napi_ok && is_array) {
    uint32_t length = 0;
    napi_get_array_length(env, argv[1], &length);
    if (length > MAX_SYSCTLS) {
      free_job(job);
      napi_throw_range_error(env, NULL, "createNetns: too many sysctls");
      return NULL;
    }
    for (uint32_t i = 0; i < length; i++) {
      napi_value pair, name, value;
      napi_get_element(env, argv[1], i, &pair);
      if (napi_get_element(env, pair, 0, &name) != napi_ok ||
          napi_get_element(env, pair, 1, &value) != napi_ok) {
        free_job(job);
        napi_throw_type_error(env, NULL, "createNetns: sysctls must be [name, value] pairs");
        return NULL;
      }
      char *n = string_arg(env, name, "sysctl name");
      char *v = n == NULL ? NULL : string_arg(env, value, "sysctl value");
      if (n == NULL || v == NULL || strstr(n, "..") != NULL || n[0] == '/') {
        free(n);
        free(v);
        free_job(job);
        bool pending = false;
        napi_is_exception_pending(env, &pending);
        if (!pending) napi_throw_type_error(env, NULL, "createNetns: a sysctl name must be relative to /proc/sys");
        return NULL;
      }
      job->sysctl_name[job->sysctl_count] = n;
      job->sysctl_value[job->sysctl_count] = v;
      job->sysctl_count++;
    }
  }
  return start(env, job, create_execute, "qubes-fakeip:createNetns");
}

static napi_value js_delete_netns(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *path = required_string(env, argc, argv, "deleteNetns: path");
  if (path == NULL) return NULL;
  /* EINVAL: not a mount point (a file left by an interrupted create); ENOENT: already gone */
  if (umount2(path, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    napi_value result = throw_errno(env, "unmount network namespace", path, errno);
    free(path);
    return result;
  }
  if (unlink(path) != 0 && errno != ENOENT) {
    napi_value result = throw_errno(env, "remove network namespace file", path, errno);
    free(path);
    return result;
  }
  free(path);
  return NULL;
}

static napi_value js_nft_run(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char *script = required_string(env, argc, argv, "nftRun: script");
  if (script == NULL) return NULL;
  int32_t fd = -1;
  if (argc >= 2 && napi_get_value_int32(env, argv[1], &fd) != napi_ok) {
    free(script);
    napi_throw_type_error(env, NULL, "nftRun: fd must be an integer");
    return NULL;
  }
  job_t *job = new_job(env);
  if (job == NULL) {
    free(script);
    return NULL;
  }
  job->script = script;
  job->fd = fd;
  return start(env, job, nft_execute, "qubes-fakeip:nftRun");
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"setns", NULL, js_setns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"createNetns", NULL, js_create_netns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"deleteNetns", NULL, js_delete_netns, NULL, NULL, NULL, napi_enumerable, NULL},
      {"nftRun", NULL, js_nft_run, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
