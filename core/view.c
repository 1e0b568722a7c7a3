#define _GNU_SOURCE
#include "view.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <linux/fs.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "index.h"
#include "merge.h"
#include "unpack.h"
#include "util.h"

bool strata_view_name_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

		if (i == 0 && !alnum)
			return false;
		if (!alnum && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

bool strata_view_exists(struct strata_store *store, const char *name)
{
	auto_free char *path = xasprintf("views/%s/view.json", name);

	return faccessat(store->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

char *strata_view_generate_name(struct strata_store *store)
{
	static const char *const adjectives[] = {
		"amber", "brave", "calm", "clever", "eager", "gentle", "happy", "keen", "lucid", "merry",
		"noble", "quiet", "rapid", "steady", "sunny", "swift", "tidy", "vivid", "witty", "zesty",
	};
	static const char *const nouns[] = {
		"badger", "comet", "dolphin", "falcon", "fern", "glacier", "heron", "lynx", "maple", "meadow",
		"otter", "pine", "quartz", "raven", "river", "sparrow", "summit", "tiger", "willow", "zephyr",
	};
	unsigned seed = (unsigned)(now_ns() ^ getpid());

	for (int attempt = 0; attempt < 400; attempt++) {
		char *name;

		seed = seed * 1103515245u + 12345u;
		name = xasprintf("%s_%s", adjectives[(seed >> 16) % 20], nouns[(seed >> 8) % 20]);
		if (attempt >= 200) {
			char *numbered = xasprintf("%s_%d", name, attempt);

			free(name);
			name = numbered;
		}
		if (!strata_view_exists(store, name))
			return name;
		free(name);
	}
	return xasprintf("view_%lld", (long long)now_ns());
}

int strata_view_create(struct strata_store *store, const char *name, const struct strata_digest *image,
		       enum strata_view_driver driver, struct strata_error **err)
{
	static const char *const dirs[] = { "upper", "work", "merged" };
	auto_free char *stage = strata_store_stage(store, "view", err);
	auto_free char *dest = xasprintf("views/%s", name);
	auto_close int fd = -1;
	char id[STRATA_DIGEST_STR_LEN];
	json_t *record;
	char *text;
	int rc;

	if (stage == NULL)
		return -1;
	if (mkdirat(store->dirfd, "views", 0700) < 0 && errno != EEXIST)
		return strata_error_set(err, errno, "cannot create `%s/views`", store->path);
	fd = openat(store->dirfd, stage, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return strata_error_set(err, errno, "cannot open `%s`", stage);
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (mkdirat(fd, dirs[i], 0755) < 0)
			return strata_error_set(err, errno, "cannot create `%s/%s`", stage, dirs[i]);
	if (driver == STRATA_VIEW_COPY && mkdirat(fd, "rootfs", 0755) < 0)
		return strata_error_set(err, errno, "cannot create `%s/rootfs`", stage);

	strata_digest_string(image, id);
	record = json_pack("{s:s, s:s, s:s, s:I}", "name", name, "image", id, "driver",
			   driver == STRATA_VIEW_COPY ? "copy" : "overlay", "created_ns", (json_int_t)now_ns());
	text = json_dumps(record, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(record);
	rc = write_file_atomic_at(fd, "view.json", text, strlen(text), 0644, err);
	free(text);
	if (rc < 0)
		return -1;
	if (renameat2(store->dirfd, stage, store->dirfd, dest, RENAME_NOREPLACE) < 0) {
		if (errno == EEXIST || errno == ENOTEMPTY)
			return strata_error_set(err, 0, "view `%s` already exists", name);
		return strata_error_set(err, errno, "cannot create view `%s`", name);
	}
	return 0;
}

int strata_view_load(struct strata_store *store, const char *name, struct strata_view *view,
		     struct strata_error **err)
{
	auto_free char *path = NULL;
	json_t *record;
	const char *driver;

	memset(view, 0, sizeof(*view));
	if (!strata_view_name_valid(name))
		return strata_error_set(err, 0, "invalid view name `%s` (letters, digits, _ . - only)", name);
	if (!strata_view_exists(store, name))
		return strata_error_set(err, 0, "view `%s` not found (see `strata views`)", name);
	path = xasprintf("views/%s/view.json", name);
	record = strata_store_read_json(store, path, err);
	if (record == NULL)
		return -1;
	if (strata_digest_parse(json_string_value(json_object_get(record, "image")), path, &view->image, err) < 0) {
		json_decref(record);
		return -1;
	}
	driver = json_string_value(json_object_get(record, "driver"));
	view->driver = driver && strcmp(driver, "copy") == 0 ? STRATA_VIEW_COPY : STRATA_VIEW_OVERLAY;
	view->created_ns = json_integer_value(json_object_get(record, "created_ns"));
	view->name = xstrdup(name);
	json_decref(record);
	return 0;
}

void strata_view_release(struct strata_view *view)
{
	free(view->name);
	memset(view, 0, sizeof(*view));
}

static int compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int strata_view_list(struct strata_store *store, char ***names, size_t *count, struct strata_error **err)
{
	int fd = openat(store->dirfd, "views", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir;
	struct dirent *de;
	char **out = NULL;
	size_t n = 0;

	*names = NULL;
	*count = 0;
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return strata_error_set(err, errno, "cannot read `%s/views`", store->path);
	}
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return strata_error_set(err, errno, "cannot read `%s/views`", store->path);
	}
	while ((de = readdir(dir)) != NULL) {
		if (!strata_view_name_valid(de->d_name) || !strata_view_exists(store, de->d_name))
			continue;
		out = xrealloc(out, (n + 1) * sizeof(char *));
		out[n++] = xstrdup(de->d_name);
	}
	closedir(dir);
	if (n > 1)
		qsort(out, n, sizeof(char *), compare_names);
	*names = out;
	*count = n;
	return 0;
}

void strata_view_list_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

/* Opens views/<name>/lock and takes a flock; returns the fd or -1 (errno EWOULDBLOCK when busy). */
static int lock_view(struct strata_store *store, const char *name, int operation)
{
	auto_free char *path = xasprintf("views/%s/lock", name);
	int fd = openat(store->dirfd, path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

	if (fd < 0)
		return -1;
	if (flock(fd, operation) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* The file views/<name>/mounted records where `strata mount` mounted the view. */
char *strata_view_mounted_at(struct strata_store *store, const char *name)
{
	auto_free char *path = xasprintf("views/%s/mounted", name);
	char *data = NULL;
	size_t len = 0;
	struct strata_error *err = NULL;

	if (read_file_at(store->dirfd, path, &data, &len, &err) < 0) {
		strata_error_free(err);
		return NULL;
	}
	return data;
}

int strata_view_check_not_mounted(struct strata_store *store, const char *name, struct strata_error **err)
{
	auto_free char *target = strata_view_mounted_at(store, name);

	if (target)
		return strata_error_set(err, 0, "view `%s` is mounted at `%s`; run `strata umount %s` first", name,
					target, target);
	return 0;
}

int strata_view_mark_mounted(struct strata_store *store, const char *name, const char *target,
			     struct strata_error **err)
{
	auto_free char *path = xasprintf("views/%s/mounted", name);

	if (strata_view_check_not_mounted(store, name, err) < 0)
		return -1;
	return write_file_atomic_at(store->dirfd, path, target, strlen(target), 0644, err);
}

char *strata_view_find_mounted(struct strata_store *store, const char *target)
{
	char **names = NULL;
	size_t count = 0;
	struct strata_error *err = NULL;
	char *found = NULL;

	if (strata_view_list(store, &names, &count, &err) < 0) {
		strata_error_free(err);
		return NULL;
	}
	for (size_t i = 0; i < count && found == NULL; i++) {
		auto_free char *at = strata_view_mounted_at(store, names[i]);

		if (at && strcmp(at, target) == 0)
			found = xstrdup(names[i]);
	}
	strata_view_list_free(names, count);
	return found;
}

void strata_view_mark_unmounted(struct strata_store *store, const char *name)
{
	auto_free char *path = xasprintf("views/%s/mounted", name);

	unlinkat(store->dirfd, path, 0);
}

int strata_view_remove(struct strata_store *store, const char *name, struct strata_error **err)
{
	auto_close int lock = -1;
	auto_free char *path = xasprintf("views/%s", name);
	auto_free char *stage = NULL;

	if (!strata_view_name_valid(name) || !strata_view_exists(store, name))
		return strata_error_set(err, 0, "view `%s` not found (see `strata views`)", name);
	if (strata_view_check_not_mounted(store, name, err) < 0)
		return -1;
	lock = lock_view(store, name, LOCK_EX | LOCK_NB);
	if (lock < 0) {
		if (errno == EWOULDBLOCK)
			return strata_error_set(err, 0, "view `%s` is in use by a running command (or by a process it "
						"left running); stop it first", name);
		return strata_error_set(err, errno, "cannot lock view `%s`", name);
	}
	/* Move it into staging first, so a crash never leaves a half-removed view listed. */
	stage = strata_store_stage(store, "rm-view", err);
	if (stage == NULL)
		return -1;
	{
		auto_free char *target = xasprintf("%s/view", stage);

		if (renameat(store->dirfd, path, store->dirfd, target) < 0)
			return strata_error_set(err, errno, "cannot remove view `%s`", name);
	}
	return rmtree_at(store->dirfd, stage, err);
}

uint64_t strata_view_upper_size(struct strata_store *store, const struct strata_view *view)
{
	auto_free char *path = xasprintf("views/%s/%s", view->name, view->driver == STRATA_VIEW_COPY ? "rootfs" : "upper");
	auto_close int fd = openat(store->dirfd, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	return fd < 0 ? 0 : dir_usage_at(fd, false);
}

/* ---- mounting ---------------------------------------------------------------- */

static char *layer_root(struct strata_store *store, const struct strata_digest *key)
{
	char hex[STRATA_DIGEST_HEX_LEN + 1];

	strata_digest_hex(key, hex);
	return xasprintf("%s/layers/%s/root", store->path, hex);
}

/*
 * Whole-file copy-up, as docker's and podman's default overlay mounts do:
 * with metacopy=on a chmod would copy only metadata, which is not what an
 * image build records.  index=off keeps the work directory free of the
 * inode index, which views do not need.
 */
#define COPY_UP_OPTIONS "metacopy=off,index=off"

static int set_copy_up_options(int fsfd)
{
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "metacopy", "off", 0) < 0)
		return -1;
	return fsconfig(fsfd, FSCONFIG_SET_STRING, "index", "off", 0);
}

/* Lower layers overlayfs accepts in one mount (OVL_MAX_STACK in Linux's fs/overlayfs). */
#define OVERLAY_MAX_LOWER 500

/* Mounts with the new mount API, one lowerdir+ per layer (Linux 6.5+): no option-length limit. */
static int mount_overlay_fsconfig(struct strata_store *store, const struct strata_image *image, const char *viewdir,
				  const char *target)
{
	int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
	int mfd;
	int rc = -1;
	auto_free char *upper = xasprintf("%s/upper", viewdir);
	auto_free char *work = xasprintf("%s/work", viewdir);

	if (fsfd < 0)
		return -1;
	for (size_t i = image->nlayers; i-- > 0;) {
		auto_free char *lower = layer_root(store, &image->layers[i].key);

		if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", lower, 0) < 0)
			goto out;
	}
	if (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upper, 0) < 0 ||
	    fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", work, 0) < 0)
		goto out;
	if (store->rootless && fsconfig(fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0)
		goto out;
	if (set_copy_up_options(fsfd) < 0)
		goto out;
	if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto out;
	mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, 0);
	if (mfd < 0)
		goto out;
	rc = move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
	close(mfd);
out:
	close(fsfd);
	return rc;
}

/*
 * Mounts with mount(2).  The option string is limited to one page, so the
 * lower directories are named through short symlinks views/<name>/l/<n>,
 * given relative to the view directory (the working directory meanwhile).
 */
static int mount_overlay_legacy(struct strata_store *store, const struct strata_image *image, const char *viewdir,
				const char *target, struct strata_error **err)
{
	struct strbuf opts = {0};
	auto_close int old_cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	auto_close int vfd = open(viewdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	auto_free char *abs_target = realpath(target, NULL);
	int rc;

	if (vfd < 0 || abs_target == NULL)
		return strata_error_set(err, errno, "cannot open view directory `%s`", viewdir);
	if (mkdirat(vfd, "l", 0755) < 0 && errno != EEXIST)
		return strata_error_set(err, errno, "cannot create `%s/l`", viewdir);
	strbuf_addstr(&opts, "lowerdir=");
	for (size_t i = image->nlayers; i-- > 0;) {
		auto_free char *link = xasprintf("l/%zu", i);
		auto_free char *lower = layer_root(store, &image->layers[i].key);

		unlinkat(vfd, link, 0);
		if (symlinkat(lower, vfd, link) < 0) {
			strbuf_release(&opts);
			return strata_error_set(err, errno, "cannot create `%s/%s`", viewdir, link);
		}
		strbuf_addf(&opts, "%s%s", i + 1 == image->nlayers ? "" : ":", link);
	}
	strbuf_addstr(&opts, ",upperdir=upper,workdir=work," COPY_UP_OPTIONS);
	if (store->rootless)
		strbuf_addstr(&opts, ",userxattr");
	if (opts.len >= 4096) {
		strata_error_set(err, 0, "image has too many layers (%zu) for the mount(2) option string; Linux 6.5 "
				 "or later mounts up to %d", image->nlayers, OVERLAY_MAX_LOWER);
		strbuf_release(&opts);
		return -1;
	}
	if (fchdir(vfd) < 0) {
		strbuf_release(&opts);
		return strata_error_set(err, errno, "cannot enter `%s`", viewdir);
	}
	rc = mount("overlay", abs_target, "overlay", 0, opts.data);
	if (rc < 0)
		strata_error_set(err, errno, "cannot mount overlayfs on `%s` (options `%.200s`)", target, opts.data);
	if (old_cwd >= 0 && fchdir(old_cwd) < 0 && rc == 0)
		rc = strata_error_set(err, errno, "cannot return to the working directory");
	strbuf_release(&opts);
	return rc;
}

int strata_view_mount(struct strata_store *store, const struct strata_view *view, const char *target,
		      struct strata_error **err)
{
	auto_free char *viewdir = xasprintf("%s/views/%s", store->path, view->name);
	struct strata_image *image;
	int rc;

	if (view->driver == STRATA_VIEW_COPY) {
		auto_free char *rootfs = xasprintf("%s/rootfs", viewdir);

		if (mount(rootfs, target, NULL, MS_BIND | MS_REC, NULL) < 0)
			return strata_error_set(err, errno, "cannot bind-mount `%s` on `%s`", rootfs, target);
		return 0;
	}

	image = strata_image_load(store, &view->image, err);
	if (image == NULL)
		return strata_error_wrap(err, "view `%s`", view->name);
	if (image->nlayers == 0) {
		strata_image_free(image);
		return strata_error_set(err, 0, "view `%s`: its image has no layers to mount", view->name);
	}
	if (image->nlayers > OVERLAY_MAX_LOWER) {
		size_t n = image->nlayers;

		strata_image_free(image);
		return strata_error_set(err, 0, "view `%s`: its image has %zu layers, but overlayfs stacks at most %d; "
					"use `--driver copy`", view->name, n, OVERLAY_MAX_LOWER);
	}
	/* STRATA_OVERLAY_MOUNT=legacy forces mount(2), so tests can cover kernels before 6.5. */
	if (getenv("STRATA_OVERLAY_MOUNT") && strcmp(getenv("STRATA_OVERLAY_MOUNT"), "legacy") == 0) {
		rc = -1;
		errno = EINVAL;
	} else {
		rc = mount_overlay_fsconfig(store, image, viewdir, target);
	}
	if (rc < 0) {
		int saved = errno;

		if (saved == EPERM || saved == EACCES) {
			strata_image_free(image);
			return strata_error_set(err, saved, "cannot mount overlayfs for view `%s` (not permitted here: "
						"use `--driver copy`, which needs no mount)", view->name);
		}
		rc = mount_overlay_legacy(store, image, viewdir, target, err);
	}
	strata_image_free(image);
	return rc;
}

/* ---- running a command ------------------------------------------------------- */

static int write_proc_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return -1;
	rc = write_all(fd, text, strlen(text));
	close(fd);
	return rc;
}

/* Enters new namespaces; for a non-root user, maps the user (and group) to root. */
static int enter_namespaces(bool rootless, struct strata_error **err)
{
	uid_t uid = geteuid();
	gid_t gid = getegid();

	if (!rootless) {
		if (unshare(CLONE_NEWNS) < 0)
			return strata_error_set(err, errno, "cannot create a mount namespace");
	} else {
		char map[64];

		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
			return strata_error_set(err, errno, "cannot create a user namespace (are unprivileged user "
						"namespaces disabled? use `--driver copy`)");
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)uid);
		if (write_proc_file("/proc/self/uid_map", map) < 0)
			return strata_error_set(err, errno, "cannot write the user namespace's uid_map");
		write_proc_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)gid);
		if (write_proc_file("/proc/self/gid_map", map) < 0)
			return strata_error_set(err, errno, "cannot write the user namespace's gid_map");
	}
	/* Nothing mounted from now on may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return strata_error_set(err, errno, "cannot make the mount namespace private");
	return 0;
}

static char **json_string_list(json_t *array, size_t *count)
{
	char **out = xcalloc(json_array_size(array) + 1, sizeof(char *));
	size_t n = 0;

	for (size_t i = 0; i < json_array_size(array); i++)
		if (json_is_string(json_array_get(array, i)))
			out[n++] = xstrdup(json_string_value(json_array_get(array, i)));
	*count = n;
	return out;
}

/* Looks a user or group name up in the chroot's /etc/passwd or /etc/group. */
static bool lookup_id(const char *file, const char *name, unsigned *id, unsigned *gid, char **home)
{
	FILE *f = fopen(file, "re");
	char line[1024];
	bool found = false;

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *fields[7] = {0};
		char *save = NULL;
		int n = 0;

		for (char *p = strtok_r(line, ":\n", &save); p && n < 7; p = strtok_r(NULL, ":\n", &save))
			fields[n++] = p;
		if (n >= 3 && strcmp(fields[0], name) == 0) {
			*id = (unsigned)strtoul(fields[2], NULL, 10);
			if (gid && n >= 4)
				*gid = (unsigned)strtoul(fields[3], NULL, 10);
			if (home && n >= 6)
				*home = xstrdup(fields[5]);
			found = true;
		}
	}
	fclose(f);
	return found;
}

static bool parse_number(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*s == '\0')
		return false;
	v = strtoul(s, &end, 10);
	if (*end != '\0')
		return false;
	*out = (unsigned)v;
	return true;
}

/* Applies the image's User ("name", "uid", "name:group", "uid:gid") inside the chroot. */
static int switch_user(const char *user, bool rootless, char **home)
{
	auto_free char *copy = xstrdup(user);
	char *group = strchr(copy, ':');
	unsigned uid = 0;
	unsigned gid = 0;

	if (group)
		*group++ = '\0';
	if (parse_number(copy, &uid)) {
		struct passwd *pw = getpwuid(uid);  /* reads the chroot's /etc/passwd */

		if (pw) {
			gid = pw->pw_gid;
			*home = xstrdup(pw->pw_dir);
		}
	} else if (!lookup_id("/etc/passwd", copy, &uid, &gid, home)) {
		fprintf(stderr, "strata: error: image user `%s` is not in the image's /etc/passwd\n", copy);
		return -1;
	}
	if (group && !parse_number(group, &gid) && !lookup_id("/etc/group", group, &gid, NULL, NULL)) {
		fprintf(stderr, "strata: error: image group `%s` is not in the image's /etc/group\n", group);
		return -1;
	}
	if (uid == 0 && gid == 0)
		return 0;
	if (rootless) {
		fprintf(stderr, "strata: warning: the image runs as %u:%u, but a non-root view maps only root; "
			"running as root\n", uid, gid);
		return 0;
	}
	if (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
		fprintf(stderr, "strata: error: cannot switch to user %u:%u: %s\n", uid, gid, strerror(errno));
		return -1;
	}
	return 0;
}

/* Runs in the child: never returns. */
static _Noreturn void run_child(struct strata_store *store, const struct strata_view *view,
				const struct strata_run_options *opts, json_t *config)
{
	struct strata_error *err = NULL;
	auto_free char *merged = NULL;
	char **argv = opts->argv;
	char *default_argv[] = { NULL, NULL };
	int rc = 0;

	signal(SIGINT, SIG_DFL);
	signal(SIGQUIT, SIG_DFL);
	if (view->driver == STRATA_VIEW_COPY) {
		/* The copy needs no mount; a user namespace only to allow chroot as non-root. */
		merged = xasprintf("%s/views/%s/rootfs", store->path, view->name);
		if (opts->chroot && geteuid() != 0)
			rc = enter_namespaces(true, &err);
	} else {
		merged = xasprintf("%s/views/%s/merged", store->path, view->name);
		rc = enter_namespaces(store->rootless, &err);
		if (rc == 0)
			rc = strata_view_mount(store, view, merged, &err);
	}
	if (rc < 0) {
		char *text = strata_error_format(err);

		fprintf(stderr, "strata: error: %s\n", text);
		_exit(125);
	}

	if (opts->chroot) {
		json_t *cfg = json_object_get(config, "config");
		const char *workdir = json_string_value(json_object_get(cfg, "WorkingDir"));
		const char *user = json_string_value(json_object_get(cfg, "User"));
		size_t nenv = 0;
		char **env = json_string_list(json_object_get(cfg, "Env"), &nenv);
		char *home = NULL;

		if (chroot(merged) < 0 || chdir("/") < 0) {
			fprintf(stderr, "strata: error: cannot chroot into view `%s`: %s\n", view->name, strerror(errno));
			_exit(125);
		}
		if (workdir && workdir[0] && chdir(workdir) < 0)
			fprintf(stderr, "strata: warning: image working directory `%s` is missing; using /\n", workdir);
		if (user && user[0] && switch_user(user, store->rootless, &home) < 0)
			_exit(125);

		{
			/* The terminal type describes the user's terminal, not the image. */
			auto_free char *term = getenv("TERM") ? xstrdup(getenv("TERM")) : NULL;

			clearenv();
			if (term)
				setenv("TERM", term, 1);
		}
		setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
		setenv("HOME", home ? home : "/root", 1);
		for (size_t i = 0; i < nenv; i++)
			putenv(env[i]);
		if (argv == NULL) {
			size_t nent = 0;
			size_t ncmd = 0;
			char **entry = json_string_list(json_object_get(cfg, "Entrypoint"), &nent);
			char **cmd = json_string_list(json_object_get(cfg, "Cmd"), &ncmd);

			argv = xcalloc(nent + ncmd + 1, sizeof(char *));
			memcpy(argv, entry, nent * sizeof(char *));
			memcpy(argv + nent, cmd, ncmd * sizeof(char *));
			if (nent + ncmd == 0) {
				fprintf(stderr, "strata: error: the image defines no Entrypoint or Cmd; give a command "
					"after --\n");
				_exit(125);
			}
		}
	} else {
		const char *shell = getenv("SHELL");

		if (chdir(merged) < 0) {
			fprintf(stderr, "strata: error: cannot enter `%s`: %s\n", merged, strerror(errno));
			_exit(125);
		}
		if (argv == NULL) {
			default_argv[0] = (char *)(shell && shell[0] ? shell : "/bin/sh");
			argv = default_argv;
		}
	}
	execvp(argv[0], argv);
	{
		int saved = errno;

		fprintf(stderr, "strata: error: cannot run `%s`: %s\n", argv[0], strerror(saved));
		_exit(saved == ENOENT ? 127 : 126);
	}
}

int strata_view_run(struct strata_store *store, const struct strata_view *view,
		    const struct strata_run_options *opts, int *status, struct strata_error **err)
{
	struct strata_image *image = strata_image_load(store, &view->image, err);
	auto_close int lock = -1;
	struct sigaction ignore = { .sa_handler = SIG_IGN };
	struct sigaction old_int;
	struct sigaction old_quit;
	pid_t pid;
	int wstatus;

	if (image == NULL)
		return strata_error_wrap(err, "view `%s`", view->name);
	if (strata_view_check_not_mounted(store, view->name, err) < 0) {
		strata_image_free(image);
		return -1;
	}
	/* One command per view: two overlay mounts must never share an upper directory. */
	lock = lock_view(store, view->name, LOCK_EX | LOCK_NB);
	if (lock < 0) {
		strata_image_free(image);
		if (errno == EWOULDBLOCK)
			return strata_error_set(err, 0, "view `%s` is in use by another command (or by a process it "
						"left running)", view->name);
		return strata_error_set(err, errno, "cannot lock view `%s`", view->name);
	}

	fflush(NULL);
	sigaction(SIGINT, &ignore, &old_int);
	sigaction(SIGQUIT, &ignore, &old_quit);
	pid = fork();
	if (pid < 0) {
		strata_image_free(image);
		return strata_error_set(err, errno, "cannot start a process for view `%s`", view->name);
	}
	if (pid == 0) {
		/*
		 * The command inherits the lock, so that processes it leaves behind
		 * (which keep the mount alive) keep the view from being removed.
		 */
		fcntl(lock, F_SETFD, 0);
		run_child(store, view, opts, image->config);
	}

	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR) {
			strata_image_free(image);
			return strata_error_set(err, errno, "cannot wait for the command in view `%s`", view->name);
		}
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	strata_image_free(image);
	if (WIFEXITED(wstatus))
		*status = WEXITSTATUS(wstatus);
	else if (WIFSIGNALED(wstatus))
		*status = 128 + WTERMSIG(wstatus);
	else
		*status = 1;
	return 0;
}

/* ---- the copy driver ---------------------------------------------------------- */

/* Copies file content, sharing blocks with a reflink where the filesystem can. */
static int copy_file(int src, int dst)
{
	struct stat st;
	off_t left;

	if (ioctl(dst, FICLONE, src) == 0)
		return 0;
	if (fstat(src, &st) < 0)
		return -1;
	left = st.st_size;
	while (left > 0) {
		ssize_t n = copy_file_range(src, NULL, dst, NULL, (size_t)left, 0);

		if (n < 0) {
			char buf[65536];

			if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
				return -1;
			/* Fall back to read and write. */
			while ((n = read(src, buf, sizeof(buf))) > 0)
				if (write_all(dst, buf, (size_t)n) < 0)
					return -1;
			return n < 0 ? -1 : 0;
		}
		if (n == 0)
			break;
		left -= n;
	}
	return 0;
}

struct copy_state {
	struct strata_store *store;
	int rootfd;
	int *layer_roots;
	const struct strata_index *indexes;
	const struct strata_merged *merged;
	bool linking;           /* second pass: hard links whose targets are copied */
	bool warned_devices;
};

/* True when a hard link's target is the same layer record in the merged tree, so both names stay linked. */
static bool link_target_visible(struct copy_state *cs, const struct strata_merged_entry *m)
{
	const struct strata_index *idx = &cs->indexes[m->layer];
	const struct strata_index_record *r = &idx->records[m->record];
	const struct strata_merged_entry *t;
	size_t len;
	const char *target;

	if (r->link_record == STRATA_INDEX_NONE)
		return false;
	target = strata_index_path(idx, r->link_record, &len);
	t = strata_merged_find(cs->merged, target, len);
	return t && t->layer == m->layer && t->record == r->link_record;
}

static int copy_hardlink(struct copy_state *cs, const struct strata_merged_entry *m, int parent, const char *leaf,
			 const char *path, struct strata_error **err)
{
	const struct strata_index *idx = &cs->indexes[m->layer];
	size_t len;
	const char *raw = strata_index_path(idx, idx->records[m->record].link_record, &len);
	auto_free char *target = xstrndup(raw, len);
	const char *slash = strrchr(target, '/');
	auto_free char *tdir = slash ? xstrndup(target, (size_t)(slash - target)) : NULL;
	auto_close int tparent = tdir ? strata_openat_beneath(cs->rootfd, tdir, O_PATH | O_DIRECTORY) : dup(cs->rootfd);

	if (tparent < 0 || linkat(tparent, slash ? slash + 1 : target, parent, leaf, 0) < 0)
		return strata_error_set(err, errno, "cannot link `%s` to `%s` in the copy", path, target);
	return 0;
}

static int copy_entry(struct copy_state *cs, const struct strata_merged_entry *m, struct strata_error **err)
{
	const struct strata_index_record *r = &cs->indexes[m->layer].records[m->record];
	auto_free char *path = xstrndup(m->path, m->path_len);
	const char *slash = strrchr(path, '/');
	const char *leaf = slash ? slash + 1 : path;
	auto_free char *parent_path = slash ? xstrndup(path, (size_t)(slash - path)) : NULL;
	auto_close int parent = parent_path ? strata_openat_beneath(cs->rootfd, parent_path, O_PATH | O_DIRECTORY)
					    : dup(cs->rootfd);
	size_t link_len;
	const char *link_raw = strata_index_link(&cs->indexes[m->layer], m->record, &link_len);
	auto_free char *link = xstrndup(link_raw, link_len);
	struct timespec ts[2] = { { r->mtime_sec, r->mtime_nsec }, { r->mtime_sec, r->mtime_nsec } };

	if (parent < 0)
		return strata_error_set(err, errno, "cannot open the directory of `%s` in the copy", path);
	if (cs->linking && r->type != STRATA_ENTRY_HARDLINK)
		return 0;

	switch (r->type) {
	case STRATA_ENTRY_DIR:
		if (mkdirat(parent, leaf, 0700) < 0 && errno != EEXIST)
			return strata_error_set(err, errno, "cannot create `%s`", path);
		return 0;  /* owner, mode and times are set after the children */
	case STRATA_ENTRY_HARDLINK:
		if (link_target_visible(cs, m)) {
			if (!cs->linking)
				return 0;  /* made in the second pass, once its target exists */
			return copy_hardlink(cs, m, parent, leaf, path, err);
		}
		/* Its target is not in the merged tree, so copy the content. */
		__attribute__((fallthrough));
	case STRATA_ENTRY_REG: {
		auto_close int src = strata_openat_beneath(cs->layer_roots[m->layer], path, O_RDONLY);
		auto_close int dst = -1;

		if (src < 0)
			return strata_error_set(err, errno, "cannot open `%s` in layer %u", path, m->layer + 1);
		dst = openat(parent, leaf, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (dst < 0 || copy_file(src, dst) < 0)
			return strata_error_set(err, errno, "cannot copy `%s`", path);
		if (!cs->store->rootless && fchown(dst, r->uid, r->gid) < 0)
			return strata_error_set(err, errno, "cannot change the owner of `%s`", path);
		if (fchmod(dst, r->mode & 07777) < 0)
			return strata_error_set(err, errno, "cannot set the mode of `%s`", path);
		strata_index_apply_xattrs(&cs->indexes[m->layer], r, dst, cs->store->rootless);
		if (futimens(dst, ts) < 0)
			return strata_error_set(err, errno, "cannot set the times of `%s`", path);
		return 0;
	}
	case STRATA_ENTRY_SYMLINK:
		if (symlinkat(link, parent, leaf) < 0)
			return strata_error_set(err, errno, "cannot create symlink `%s`", path);
		break;
	case STRATA_ENTRY_CHAR:
	case STRATA_ENTRY_BLOCK:
	case STRATA_ENTRY_FIFO: {
		mode_t type = strata_entry_type_mode(r->type);

		if (r->flags & STRATA_ENTRY_NOT_CREATED) {
			if (!cs->warned_devices)
				strata_warn("device node `%s` (and any others) is not in the copy: a non-root store "
					    "cannot create device nodes", path);
			cs->warned_devices = true;
			return 0;
		}
		if (mknodat(parent, leaf, type | (r->mode & 07777), makedev(r->rdev_major, r->rdev_minor)) < 0)
			return strata_error_set(err, errno, "cannot create `%s`", path);
		break;
	}
	default:
		return 0;
	}
	if (!cs->store->rootless && fchownat(parent, leaf, r->uid, r->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return strata_error_set(err, errno, "cannot change the owner of `%s`", path);
	utimensat(parent, leaf, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

/* Applies directory metadata deepest first, so no later step changes a directory's mtime. */
static int finish_copy_dirs(struct copy_state *cs, const struct strata_merged *merged, struct strata_error **err)
{
	for (size_t i = merged->count; i-- > 0;) {
		const struct strata_merged_entry *m = &merged->entries[i];
		const struct strata_index_record *r = &cs->indexes[m->layer].records[m->record];
		auto_free char *path = NULL;
		auto_close int fd = -1;
		struct timespec ts[2] = { { r->mtime_sec, r->mtime_nsec }, { r->mtime_sec, r->mtime_nsec } };

		if (r->type != STRATA_ENTRY_DIR)
			continue;
		path = xstrndup(m->path, m->path_len);
		fd = strata_openat_beneath(cs->rootfd, path, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			return strata_error_set(err, errno, "cannot open `%s` in the copy", path);
		if (!cs->store->rootless && fchown(fd, r->uid, r->gid) < 0)
			return strata_error_set(err, errno, "cannot change the owner of `%s`", path);
		strata_index_apply_xattrs(&cs->indexes[m->layer], r, fd, cs->store->rootless);
		if (fchmod(fd, cs->store->rootless ? ((r->mode & 07777) | 0700) : (r->mode & 07777)) < 0 ||
		    futimens(fd, ts) < 0)
			return strata_error_set(err, errno, "cannot set the mode or times of `%s`", path);
	}
	return 0;
}

const char *strata_dir_identity(const struct statx *st)
{
	static char text[64];

	/* Inode numbers are reused at once on ext4, so the birth time distinguishes a new directory. */
	if (st->stx_mask & STATX_BTIME)
		snprintf(text, sizeof(text), "%llu.%lld.%u", (unsigned long long)st->stx_ino,
			 (long long)st->stx_btime.tv_sec, st->stx_btime.tv_nsec);
	else
		snprintf(text, sizeof(text), "%llu", (unsigned long long)st->stx_ino);
	return text;
}

/*
 * Records each directory's inode in views/<name>/dir-inodes, so that diff
 * can tell a directory deleted and made again (overlayfs would mark it
 * opaque) from one that was only changed.
 */
static int record_dir_inodes(struct strata_store *store, const struct strata_view *view, struct copy_state *cs,
			     const struct strata_merged *merged, struct strata_error **err)
{
	struct strbuf out = {0};
	auto_free char *file = xasprintf("views/%s/dir-inodes", view->name);
	int rc;

	strbuf_append(&out, "", 0);
	for (size_t i = 0; i < merged->count; i++) {
		const struct strata_merged_entry *m = &merged->entries[i];
		auto_free char *path = NULL;
		struct statx st;

		if (cs->indexes[m->layer].records[m->record].type != STRATA_ENTRY_DIR)
			continue;
		path = xstrndup(m->path, m->path_len);
		if (statx(cs->rootfd, path, AT_SYMLINK_NOFOLLOW, STATX_INO | STATX_BTIME, &st) < 0)
			continue;
		strbuf_addf(&out, "%s %s", strata_dir_identity(&st), path);
		strbuf_append(&out, "", 1);
	}
	rc = write_file_atomic_at(store->dirfd, file, out.data, out.len, 0644, err);
	strbuf_release(&out);
	return rc;
}

int strata_view_populate_copy(struct strata_store *store, const struct strata_view *view,
			      struct strata_error **err)
{
	struct strata_image *image = strata_image_load(store, &view->image, err);
	struct strata_index *indexes = NULL;
	struct strata_merged merged = {0};
	struct copy_state cs = { .store = store, .rootfd = -1 };
	auto_free char *rootfs = xasprintf("views/%s/rootfs", view->name);
	size_t loaded = 0;
	int rc = -1;
	mode_t old_umask = umask(0);

	if (image == NULL)
		goto out;
	indexes = xcalloc(image->nlayers + 1, sizeof(*indexes));
	cs.layer_roots = xcalloc(image->nlayers + 1, sizeof(int));
	for (; loaded < image->nlayers; loaded++) {
		char hex[STRATA_DIGEST_HEX_LEN + 1];
		auto_free char *dir = NULL;
		auto_close int fd = -1;

		strata_digest_hex(&image->layers[loaded].key, hex);
		dir = xasprintf("layers/%s", hex);
		fd = openat(store->dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cs.layer_roots[loaded] = fd < 0 ? -1 : openat(fd, "root", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || cs.layer_roots[loaded] < 0 || strata_index_load(fd, "index", &indexes[loaded], err) < 0) {
			if (*err == NULL)
				strata_error_set(err, errno, "cannot open layer `%s`", dir);
			if (cs.layer_roots[loaded] >= 0)
				close(cs.layer_roots[loaded]);
			goto out;
		}
	}
	cs.indexes = indexes;
	if (strata_merge_layers(indexes, image->nlayers, &merged, err) < 0)
		goto out;
	cs.rootfd = openat(store->dirfd, rootfs, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (cs.rootfd < 0) {
		strata_error_set(err, errno, "cannot open `%s`", rootfs);
		goto out;
	}
	cs.merged = &merged;
	for (int pass = 0; pass < 2; pass++) {
		cs.linking = pass == 1;
		for (size_t i = 0; i < merged.count; i++)
			if (copy_entry(&cs, &merged.entries[i], err) < 0)
				goto out;
	}
	if (finish_copy_dirs(&cs, &merged, err) < 0)
		goto out;
	if (record_dir_inodes(store, view, &cs, &merged, err) < 0)
		goto out;
	rc = 0;
out:
	umask(old_umask);
	if (rc < 0)
		strata_error_wrap(err, "copying the layers of view `%s`", view->name);
	if (cs.rootfd >= 0)
		close(cs.rootfd);
	for (size_t i = 0; i < loaded; i++) {
		close(cs.layer_roots[i]);
		strata_index_release(&indexes[i]);
	}
	free(cs.layer_roots);
	free(indexes);
	strata_merged_release(&merged);
	strata_image_free(image);
	return rc;
}
