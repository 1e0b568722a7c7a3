/*
 * strata: command dispatch, global options and per-command option parsing.
 *
 * Every subcommand is one row of `commands[]`; its option table is the single
 * source for parsing, --help, the man page SYNOPSIS (a test compares them)
 * and shell completion (--list-options).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/store.h"
#include "../core/util.h"
#include "cmd.h"

const char *global_store;
int verbosity;
bool stdout_colour;

static const struct command commands[] = {
	{
		"demo", cmd_demo, "import the built-in teaching image and show how it grew",
		"[-o FILE] [--store DIR]",
		"Writes a small teaching image with strata's own code (no network needed), imports it "
		"into the store as " "localhost/strata-demo:latest" " and prints `strata images`, "
		"`strata layers` and `strata du`. Its six layers show an added tree, a 4 KiB edit that copies up a 4 MiB "
		"file, a chmod that copies up a 2 MiB file, deletions by whiteout, a directory replaced "
		"through an opaque whiteout, and a hard link. With -o, only writes the archive.",
		demo_options, CMD_STORE_WRITE, 0, 0,
	},
	{
		"diff", cmd_diff, "show what a view, a layer or an image changed",
		"[--bytes] [--json] [--layer N] [--long] [--name-only] [-z] [--stat] [--store DIR] VIEW|IMAGE [IMAGE2]",
		"With a VIEW, lists what its command changed against the image: A added, C changed, D deleted, "
		"one path per line in path order, like `podman diff`. With IMAGE --layer N, lists what layer N "
		"did to the layers below it. With IMAGE IMAGE2, lists how the second image's tree differs from "
		"the first's, from the layer indexes alone. A name that is both a view and an image means the view.",
		diff_options, CMD_STORE, 1, 2,
	},
	{
		"du", cmd_du, "show where an image's bytes are and why it grew",
		"[--base N] [--bytes] [--ignore GLOB]... [--json] [--max-layer-size BYTES] [--max-wasted BYTES|PERCENT] "
		"[--min-efficiency RATIO] [--top N] IMAGE|VIEW | --store",
		"For an IMAGE, lists per layer the bytes it added, the copy-ups with new content, the copy-ups "
		"with the same content (a chmod, chown or touch copies the whole file), its whiteouts and opaque "
		"directories and the bytes they hide that still ship below; then the image's shipped, live and "
		"wasted bytes, its efficiency, and the files that waste the most. For a VIEW, shows what a layer "
		"made from its changes would add. With --store, shows the store's bytes on disk and what sharing "
		"layers saves. The --max-* and --min-* rules make du exit 3 when the image fails them. The "
		"store's location goes before the command (strata --store DIR du ...), because du's --store "
		"selects the store report.",
		du_options, CMD_STORE, 0, 1,
	},
	{
		"fsck", cmd_fsck, "check the store for damage and repair it",
		"[--json] [--repair] [--store DIR]",
		"Checks that every tag points at an image, every image at layers that exist, every layer matches "
		"its index (each file is hashed again), every view at an image, and that no staging was left by an "
		"interrupted command. With --repair, removes broken tags, images and layers and stale staging, and "
		"says what it removed; views are reported but never removed. Exits 1 when a problem remains.",
		fsck_options, CMD_STORE, 0, 0,
	},
	{
		"images", cmd_images, "list the images in the store",
		"[--bytes] [--json] [--no-trunc] [-q] [--store DIR]",
		"Lists every tagged image (one row per tag) and every untagged image in the store.",
		images_options, CMD_STORE | CMD_EMPTY_OK, 0, 0,
	},
	{
		"layers", cmd_layers, "list an image's layers with sizes, history and sharing",
		"[--bytes] [--json] [--no-trunc] [--store DIR] IMAGE",
		"Lists the layers of IMAGE from the bottom up: diff ID, compressed and uncompressed size, "
		"entry count, how many images in the store share the layer, and the history entry that "
		"created it. History entries without a layer are listed as (empty layer).",
		layers_options, CMD_STORE, 1, 1,
	},
	{
		"mount", cmd_mount, "mount a view on a directory until `strata umount` (root only)",
		"[--store DIR] VIEW DIR",
		"Mounts VIEW (the image's layers read-only under the view's upper directory) on DIR in the "
		"host's mount namespace, so that other tools can explore it. Needs root. Changes made "
		"through DIR land in the view's upper directory.",
		mount_options, CMD_STORE, 2, 2,
	},
	{
		"pull-from-tarball", cmd_pull_from_tarball, "import images from a docker, podman or OCI archive",
		"[--json] [--max-entries N] [--max-image-bytes BYTES] [--max-layer-bytes BYTES] [--max-path-depth N] "
		"[--max-path-length N] [--max-xattr-size BYTES] [--platform OS/ARCH[/VARIANT]] [-q] [--store DIR] "
		"[--tag NAME:TAG]... FILE|-",
		"Imports every image in FILE (or standard input for -): docker save archives (legacy and "
		"Docker 25+), podman docker-archive and oci-archive files and OCI image layouts in a tar, "
		"optionally gzip- or zstd-compressed. Every digest is verified before anything is published, "
		"and each layer is unpacked once into the shared store.",
		pull_from_tarball_options, CMD_STORE_WRITE, 1, 1,
	},
	{
		"rm-view", cmd_rm_view, "delete views and their changes",
		"[--store DIR] VIEW...",
		"Deletes each VIEW with its upper directory. A view in which a command is running is not "
		"deleted. Prints the name of each deleted view.",
		rm_view_options, CMD_STORE, 1, -1,
	},
	{
		"run-view", cmd_run_view, "run a command in a container view of an image",
		"[--chroot] [--driver overlay|copy] [--name NAME] [-q] [--rm] [--store DIR] IMAGE [-- COMMAND [ARG...]]",
		"Creates the view NAME of IMAGE (or reuses it, like restarting a stopped container): the "
		"image's layers read-only under a writable upper directory of its own, mounted with overlayfs "
		"in a private mount namespace. Runs COMMAND with the view's root as its working directory "
		"(default: $SHELL, else /bin/sh) and exits with its exit status. With --chroot, COMMAND runs "
		"inside the view's root, and without COMMAND the image's Entrypoint and Cmd run with its Env, "
		"WorkingDir and User. The view and its upper directory persist after the command; --rm deletes "
		"the view. A non-root user gets a user namespace in which they are root.",
		run_view_options, CMD_STORE, 1, -1,
	},
	{
		"umount", cmd_umount, "unmount a view mounted with `strata mount`",
		"[--store DIR] DIR",
		"Unmounts the view that `strata mount` mounted on DIR.",
		mount_options, CMD_STORE, 1, 1,
	},
	{
		"verify", cmd_verify, "check an image's unpacked layers against their indexes",
		"[--store DIR] IMAGE",
		"Re-hashes every file of every layer of IMAGE and compares type, mode, owner, size, content, "
		"symlink targets and device numbers with the layer's index. Lists each difference and exits "
		"1 when there is any.",
		verify_options, CMD_STORE, 1, 1,
	},
	{
		"views", cmd_views, "list the views in the store",
		"[--bytes] [--json] [-q] [--store DIR]",
		"Lists every view: its name, image, driver, creation time and size: the regular files of its "
		"upper directory, or of the whole copy for a view made with the copy driver.",
		views_options, CMD_STORE | CMD_EMPTY_OK, 0, 0,
	},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void warn_printer(const char *message)
{
	if (verbosity >= 0)
		fprintf(stderr, "strata: warning: %s\n", message);
}

static void print_global_help(FILE *out)
{
	fputs("usage: strata [--store DIR] [-q | -v] COMMAND [OPTIONS] [ARGS]\n"
	      "       strata --version | --help\n\n"
	      "strata stores container image layers once, shows what each layer changed\n"
	      "and where an image's bytes go.\n\ncommands:\n", out);
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-20s %s\n", commands[i].name, commands[i].summary);
	fputs("\nglobal options:\n"
	      "  --store DIR          store directory (default: $STRATA_STORE, else /var/lib/strata\n"
	      "                       for root and ${XDG_DATA_HOME:-~/.local/share}/strata for others)\n"
	      "  -q, --quiet          print no warnings\n"
	      "  -v, --verbose        print more detail on stderr\n"
	      "  --version            print the version and exit\n"
	      "  -h, --help           print this help and exit\n\n"
	      "Run 'strata COMMAND --help' for a command's options; 'man strata' for more.\n", out);
}

static void print_command_help(const struct command *cmd)
{
	printf("usage: strata %s %s\n\n", cmd->name, cmd->usage);
	printf("%s\n\noptions:\n", cmd->description);
	for (const struct option_spec *o = cmd->options; o->long_name; o++) {
		char left[64];

		if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->long_name,
				 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->long_name, o->metavar ? " " : "",
				 o->metavar ? o->metavar : "");
		printf("  %-30s %s\n", left, o->help);
	}
	printf("  %-30s %s\n", "-h, --help", "print this help and exit");
}

/* Completion helper: OPTION<TAB>ARG<TAB>DESCRIPTION per line. */
static void print_option_list(const struct command *cmd)
{
	for (const struct option_spec *o = cmd->options; o->long_name; o++) {
		printf("--%s\t%s\t%s\n", o->long_name, o->metavar ? o->metavar : "", o->help);
		if (o->short_name)
			printf("-%c\t%s\t%s\n", o->short_name, o->metavar ? o->metavar : "", o->help);
	}
	printf("--help\t\tprint help and exit\n");
}

static int parse_args(const struct command *cmd, int argc, char **argv, struct cmd_args *args)
{
	struct option longopts[OPT_COUNT + 4];
	char shortopts[64] = "h";
	size_t n = 0;
	size_t s = 1;
	int c;

	memset(args, 0, sizeof(*args));
	for (const struct option_spec *o = cmd->options; o->long_name; o++) {
		longopts[n++] = (struct option){ o->long_name, o->metavar ? required_argument : no_argument, NULL,
						 256 + (int)o->id };
		if (o->short_name) {
			shortopts[s++] = o->short_name;
			if (o->metavar)
				shortopts[s++] = ':';
		}
	}
	longopts[n++] = (struct option){ "help", no_argument, NULL, 256 + OPT_HELP };
	longopts[n++] = (struct option){ "list-options", no_argument, NULL, 256 + OPT_LIST_OPTIONS };
	longopts[n] = (struct option){ 0 };
	shortopts[s] = '\0';

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		int id = -1;

		if (c == '?') {
			if (optopt)
				return usage_error(cmd->name, "unknown option `-%c`", optopt);
			return usage_error(cmd->name, "unknown option `%s`", argv[optind - 1]);
		}
		if (c == ':')
			return usage_error(cmd->name, "option `%s` needs a value", argv[optind - 1]);
		if (c == 'h') {
			id = OPT_HELP;
		} else if (c >= 256) {
			id = c - 256;
		} else {
			for (const struct option_spec *o = cmd->options; o->long_name; o++)
				if (o->short_name == c)
					id = (int)o->id;
		}
		if (id < 0)
			return usage_error(cmd->name, "unknown option");
		args->count[id]++;
		if (optarg) {
			args->value[id] = optarg;
			args->list[id] = xrealloc(args->list[id], (args->nlist[id] + 1) * sizeof(char *));
			args->list[id][args->nlist[id]++] = optarg;
		} else {
			/* getopt reports a missing value for a long option as '?' or ':' above. */
		}
	}
	args->argc = argc - optind;
	args->argv = argv + optind;
	return 0;
}

static void release_args(struct cmd_args *args)
{
	for (int i = 0; i < OPT_COUNT; i++)
		free(args->list[i]);
}

static int run_command(const struct command *cmd, int argc, char **argv)
{
	struct cmd_args args;
	struct strata_store *store = NULL;
	struct strata_error *err = NULL;
	auto_free char *path = NULL;
	int rc;

	rc = parse_args(cmd, argc, argv, &args);
	if (rc != 0) {
		release_args(&args);
		return rc;
	}
	if (args.count[OPT_HELP]) {
		print_command_help(cmd);
		release_args(&args);
		return 0;
	}
	if (args.count[OPT_LIST_OPTIONS]) {
		print_option_list(cmd);
		release_args(&args);
		return 0;
	}
	if (strcmp(cmd->name, "du") == 0 && args.count[OPT_STORE_REPORT] && args.argc > 0) {
		rc = usage_error(cmd->name, "du's --store takes no argument: it selects the store report; give the "
				 "store's location before the command (strata --store DIR du ...)");
		release_args(&args);
		return rc;
	}
	if (args.argc < cmd->min_args || (cmd->max_args >= 0 && args.argc > cmd->max_args)) {
		rc = usage_error(cmd->name, args.argc < cmd->min_args ? "missing argument (usage: strata %s %s)"
				 : "too many arguments (usage: strata %s %s)", cmd->name, cmd->usage);
		release_args(&args);
		return rc;
	}
	if (args.count[OPT_JSON] && args.count[OPT_QUIET]) {
		release_args(&args);
		return usage_error(cmd->name, "--json and -q cannot be used together");
	}

	if (cmd->flags & (CMD_STORE | CMD_STORE_WRITE)) {
		unsigned flags = (cmd->flags & CMD_STORE_WRITE) ? STRATA_STORE_CREATE | STRATA_STORE_LOCK : 0;

		path = strata_store_default_path(args.value[OPT_STORE] ? args.value[OPT_STORE] : global_store);
		if ((cmd->flags & CMD_EMPTY_OK) && access(path, F_OK) < 0 && errno == ENOENT) {
			/* Nothing imported yet: list nothing, as docker and podman do. */
			rc = cmd->run(NULL, &args);
			release_args(&args);
			return rc;
		}
		store = strata_store_open(path, flags, &err);
		if (store == NULL) {
			release_args(&args);
			return report_error(err);
		}
	}
	rc = cmd->run(store, &args);
	strata_store_free(store);
	release_args(&args);
	return rc;
}

/* Prints the tags of the store, one per line, for shell completion. */
static int list_images(void)
{
	struct strata_error *err = NULL;
	auto_free char *path = strata_store_default_path(global_store);
	struct strata_store *store = strata_store_open(path, 0, &err);
	json_t *tags;
	const char *tag;
	json_t *value;

	if (store == NULL) {
		strata_error_free(err);
		return 0;
	}
	tags = strata_store_load_tags(store, &err);
	if (tags) {
		json_object_foreach(tags, tag, value)
			printf("%s\n", tag);
		json_decref(tags);
	}
	strata_error_free(err);
	strata_store_free(store);
	return 0;
}

static int finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		if (errno != EPIPE)
			fprintf(stderr, "strata: error: cannot write to standard output: %s\n", strerror(errno));
		return rc ? rc : 1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	int i = 1;
	const char *no_colour = getenv("NO_COLOR");

	/* Names from archives are bytes; a UTF-8 C locale keeps libarchive from converting them. */
	if (setlocale(LC_CTYPE, "C.UTF-8") == NULL)
		setlocale(LC_CTYPE, "C");
	strata_set_warn_handler(warn_printer);
	stdout_colour = isatty(STDOUT_FILENO) && (no_colour == NULL || no_colour[0] == '\0');

	while (i < argc && argv[i][0] == '-') {
		const char *a = argv[i];

		if (strcmp(a, "--version") == 0) {
			printf("strata %s\n", STRATA_VERSION);
			return finish_stdout(0);
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_global_help(stdout);
			return finish_stdout(0);
		} else if (strcmp(a, "--list-commands") == 0) {
			for (size_t c = 0; c < NCOMMANDS; c++)
				printf("%s\t%s\n", commands[c].name, commands[c].summary);
			return finish_stdout(0);
		} else if (strcmp(a, "--list-options") == 0) {
			printf("--store\tDIR\tstore directory\n-q\t\tprint no warnings\n--quiet\t\tprint no warnings\n"
			       "-v\t\tprint more detail on stderr\n--verbose\t\tprint more detail on stderr\n"
			       "--version\t\tprint the version and exit\n--help\t\tprint help and exit\n");
			return finish_stdout(0);
		} else if (strcmp(a, "--list-images") == 0) {
			return finish_stdout(list_images());
		} else if (strcmp(a, "--store") == 0) {
			if (i + 1 >= argc)
				return usage_error(NULL, "option `--store` needs a directory");
			global_store = argv[++i];
		} else if (strncmp(a, "--store=", 8) == 0) {
			global_store = a + 8;
		} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
			verbosity = -1;
		} else if (strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0) {
			verbosity = 1;
		} else {
			return usage_error(NULL, "unknown option `%s`", a);
		}
		i++;
	}
	if (i >= argc) {
		print_global_help(stderr);
		return 2;
	}
	if (strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc) {
			for (size_t c = 0; c < NCOMMANDS; c++) {
				if (strcmp(commands[c].name, argv[i + 1]) == 0) {
					print_command_help(&commands[c]);
					return finish_stdout(0);
				}
			}
			return usage_error(NULL, "unknown command `%s`", argv[i + 1]);
		}
		print_global_help(stdout);
		return finish_stdout(0);
	}
	for (size_t c = 0; c < NCOMMANDS; c++)
		if (strcmp(commands[c].name, argv[i]) == 0)
			return finish_stdout(run_command(&commands[c], argc - i, argv + i));
	return usage_error(NULL, "unknown command `%s`", argv[i]);
}
