/* main.c — the runner command line: load a pipeline, apply --set
 * overrides, check it against the schema and the plugins' key tables,
 * and hand it to the driver its `run` setting names. */
#include <getopt.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gslerr.h"
#include "pipeline.h"
#include "plot.h"
#include "run.h"
#include "sweep.h"
#include "signals.h"
#include "threads.h"
#include "world.h"
#include "runner/kit/util.h"


enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: runner [options] PIPELINE.cfg\n"
            "\n"
            "Runs an experiment pipeline declared in a libconfig file, built from\n"
            "plugins (tokenizers, backbones, poolers, heads, losses, metrics, freeze\n"
            "policies, samplers, datasets).\n"
            "\n"
            "options:\n"
            "  --set PATH=VALUE   override a setting (repeatable); PATH is dotted,\n"
            "                     e.g. pooler.plugin='\"max\"' or tasks.[0].head.hidden=[256,128];\n"
            "                     a bare word VALUE is taken as a string\n"
            "  --out DIR          results folder of this run (default results/<name>/<run-id>)\n"
            "  --check            validate, print the resolved pipeline, run nothing\n"
            "  --list-plugins     list the plugins on the search path\n"
            "  --describe NAME    a plugin's keys, types, defaults and docs (NAME or kind/NAME)\n"
            "  --threads N        threads for BLAS and kernels (default: all cores)\n"
            "  --seed N           seed of the run's RNG (overrides the pipeline's `seed`)\n"
            "  --resume DIR       continue training from a checkpoint folder\n"
            "  --sweep PATH=[v1,v2,...]\n"
            "                     run the pipeline once per value (repeatable: the grid of\n"
            "                     all combinations; see also a `sweep` section); --out is\n"
            "                     the sweep folder (default results/<name>/sweep); finished\n"
            "                     points are skipped when a sweep is run again\n"
            "  --jobs N           sweep points run in parallel (threads divided among them)\n"
            "  --collect DIR      write the tables of sweep folder DIR (summary.md, tables/)\n"
            "  --quiet            only warnings and errors on stderr\n"
            "  --jsonl            stdout: embeddings or predictions as JSON Lines, nothing else\n"
            "                     (= --set output.stdout=jsonl; logs stay on stderr)\n"
            "  -h, --help, -V, --version\n"
            "\n"
            "runs (the pipeline's `run` setting):\n");
    for (const driver *d = drivers; d->name; d++)
        fprintf(f, "  %-12s %s\n", d->name, d->summary);
    fprintf(f,
            "\nplugins are found beside the runner (<bin>/plugins, or <prefix>/lib/runner/plugins\n"
            "when installed), then in $RUNNER_PLUGIN_PATH, then in the pipeline's plugin_path,\n"
            "as <kind>_<name>.so or in the bundle <kind>.so.\n"
            "@include \"FILE\" is looked for beside the including file, then beside the files\n"
            "including it, then in each folder of $RUNNER_INCLUDE_PATH; relative data and model\n"
            "paths resolve against the working directory.\n"
            "exit status: 0 success, 1 runtime failure, 2 bad usage or configuration,\n"
            "130 / 143 stopped by SIGINT / SIGTERM (training: last/ written, --resume continues)\n");
}

static const char *type_label(runner_type t)
{
    switch (t) {
    case RUNNER_T_INT: return "int";
    case RUNNER_T_FLOAT: return "float";
    case RUNNER_T_BOOL: return "bool";
    case RUNNER_T_STRING: return "string";
    case RUNNER_T_INT_LIST: return "int[]";
    case RUNNER_T_FLOAT_LIST: return "float[]";
    case RUNNER_T_STRING_LIST: return "string[]";
    case RUNNER_T_GROUP: return "group";
    }
    return "?";
}

static int describe(loader *L, const char *what)
{
    const char *slash = strchr(what, '/');
    int found = 0;
    for (int k = RUNNER_KIND_TOKENIZER; k <= RUNNER_KIND_DATASET; k++) {
        const char *name = what;
        if (slash) {
            if (strncmp(what, kind_name((runner_kind)k), (size_t)(slash - what)) != 0 ||
                strlen(kind_name((runner_kind)k)) != (size_t)(slash - what))
                continue;
            name = slash + 1;
        }
        const runner_plugin *d;
        if (loader_get(L, (runner_kind)k, name, &d) != 0)
            continue;
        found++;
        printf("%s %s (ABI %d.%d): %s\n", kind_name(d->kind), d->name, d->abi_major,
               d->abi_minor, d->summary ? d->summary : "");
        if (!d->keys || !d->keys[0].name)
            printf("  no settings\n");
        for (const runner_key *key = d->keys; key && key->name; key++)
            printf("  %-22s %-9s default %-12s %s%s%s%s\n", key->name, type_label(key->type),
                   key->def ? key->def : "(none)", key->doc ? key->doc : "", key->limits ? " [limits: " : "",
                   key->limits ? key->limits : "", key->limits ? "]" : "");
    }
    if (!found) {
        char buf[2048];
        fprintf(stderr, "runner: no plugin '%s' on the search path %s\n", what,
                loader_path_string(L, buf, sizeof buf));
        return EXIT_USAGE;
    }
    return 0;
}

/* A VALUE that is one bare word (no quotes, not a number, bool, list or
 * group) is taken as a string: --set pooler.plugin=max. */
static char *normalise_assignment(const char *a)
{
    const char *eq = strchr(a, '=');
    if (!eq)
        return str_dup(a);
    const char *v = eq + 1;
    config_t tmp;
    config_init(&tmp);
    char *probe = str_printf("v = %s;", v);
    int parses = probe && config_read_string(&tmp, probe) == CONFIG_TRUE;
    config_destroy(&tmp);
    free(probe);
    if (parses || !*v || strpbrk(v, "\"[](){};,=\n"))
        return str_dup(a);
    return str_printf("%.*s=\"%s\"", (int)(eq - a), a, v);
}

/* A count option from 1 to max. */
static int parse_count(const char *opt, const char *arg, int max, int *out)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end || end == arg || v < 1 || v > max) {
        fprintf(stderr, "runner: %s %s: expected a number from 1 to %d\n", opt, arg, max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* What the command line asked for. */
typedef struct cli {
    const char **sets;
    int nsets, check, list, quiet, threads, jobs, point;
    const char *out, *describe_name, *resume, *collect;
    sweep sw;
    long long seed;
} cli;

enum { O_SET = 256, O_OUT, O_CHECK, O_LIST, O_DESCRIBE, O_THREADS, O_SEED, O_QUIET,
       O_HELP, O_VERSION, O_RESUME, O_JSONL, O_SWEEP, O_JOBS, O_COLLECT, O_POINT };

/* One option with an argument into c; EXIT_USAGE when it is bad. */
static int option_value(cli *c, int opt, const char *arg)
{
    char *end;
    switch (opt) {
    case O_SWEEP:
        if (sweep_add_arg(&c->sw, arg) != 0) {
            fprintf(stderr, "runner: %s\n", err_get());
            return EXIT_USAGE;
        }
        return 0;
    case O_JOBS: return parse_count("--jobs", arg, 256, &c->jobs) != 0 ? EXIT_USAGE : 0;
    case O_THREADS: return parse_count("--threads", arg, 1024, &c->threads) != 0 ? EXIT_USAGE : 0;
    case O_SEED:
        c->seed = strtoll(arg, &end, 10);
        if (*end || c->seed < 0) {
            fprintf(stderr, "runner: --seed %s: expected a non-negative integer\n", arg);
            return EXIT_USAGE;
        }
        return 0;
    }
    return 0;
}

/* The options into c. Returns 0 to go on, -1 when done (help, version)
 * or EXIT_USAGE. */
static int parse_args(int argc, char **argv, cli *c)
{
    static const struct option opts[] = {
        {"set", required_argument, 0, O_SET},       {"out", required_argument, 0, O_OUT},
        {"check", no_argument, 0, O_CHECK},         {"list-plugins", no_argument, 0, O_LIST},
        {"describe", required_argument, 0, O_DESCRIBE},
        {"threads", required_argument, 0, O_THREADS}, {"seed", required_argument, 0, O_SEED},
        {"quiet", no_argument, 0, O_QUIET},         {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},     {"resume", required_argument, 0, O_RESUME},
        {"sweep", required_argument, 0, O_SWEEP},   {"jobs", required_argument, 0, O_JOBS},
        {"collect", required_argument, 0, O_COLLECT}, {"sweep-point", no_argument, 0, O_POINT},
        {"jsonl", no_argument, 0, O_JSONL},
        {0, 0, 0, 0},
    };
    int o, bad;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        switch (o) {
        case O_SET: c->sets[c->nsets++] = optarg; break;
        case O_OUT: c->out = optarg; break;
        case O_CHECK: c->check = 1; break;
        case O_LIST: c->list = 1; break;
        case O_DESCRIBE: c->describe_name = optarg; break;
        case O_RESUME: c->resume = optarg; break;
        case O_COLLECT: c->collect = optarg; break;
        case O_POINT: c->point = 1; break;
        case O_QUIET: c->quiet = 1; break;
        case O_JSONL: c->sets[c->nsets++] = "output.stdout=\"jsonl\""; break;
        case O_SWEEP:
        case O_JOBS:
        case O_THREADS:
        case O_SEED:
            if ((bad = option_value(c, o, optarg)) != 0)
                return bad;
            break;
        case 'h':
        case O_HELP: usage(stdout); return -1;
        case 'V':
        case O_VERSION: printf("runner %s (plugin ABI %d.%d)\n", RUNNER_VERSION,
                               RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR); return -1;
        default:
            fprintf(stderr, "runner: unknown or incomplete option '%s' (see runner --help)\n",
                    argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    return 0;
}

/* --list-plugins / --describe, with the pipeline's plugin_path if one is given. */
static int list_or_describe(pipeline *pl, const cli *c, const char *file)
{
    if (file && config_load(&pl->cfg, file) == 0) {
        const config_setting_t *pp = config_lookup(&pl->cfg, "plugin_path");
        for (int i = 0; pp && i < config_setting_length(pp); i++)
            loader_add_dir(&pl->L, config_setting_get_string_elem(pp, i));
    }
    if (c->list)
        loader_list(&pl->L, !c->quiet);
    return c->describe_name ? describe(&pl->L, c->describe_name) : 0;
}

/* A sweep: its points (--check lists them) run as child runners. */
static int run_sweep(pipeline *pl, cli *c, const char *file)
{
    const char *nm = NULL;
    char *base = NULL;
    if (!config_lookup_string(&pl->cfg, "name", &nm)) {
        const char *slash = strrchr(file, '/');
        base = strndup(slash ? slash + 1 : file, strcspn(slash ? slash + 1 : file, "."));
    }
    sweep_opts so = {file, c->out, nm ? nm : base, c->sets, c->nsets, c->threads, c->jobs, c->quiet, c->seed};
    if (c->check)
        sweep_list(&c->sw);
    int status = c->check ? 0 : sweep_run(&c->sw, &so);
    free(base);
    return status;
}

/* --set overrides, validation (every problem at once), name and seed. */
static int configure(pipeline *pl, const cli *c, const char *file, diags *d)
{
    if (!config_lookup(&pl->cfg, "output")) /* its defaults, and --set cannot create a group */
        config_setting_add(config_root_setting(&pl->cfg), "output", CONFIG_TYPE_GROUP);
    for (int i = 0; i < c->nsets; i++) {
        char *a = normalise_assignment(c->sets[i]);
        if (!a || config_override(&pl->cfg, a, &pl->origins) != 0)
            diag_add(d, "%s", err_get());
        free(a);
    }
    pipeline_validate(pl, d);
    if (d->n) {
        fprintf(stderr, "runner: %s: %d error%s in the pipeline:\n", file, d->n, d->n > 1 ? "s" : "");
        for (int i = 0; i < d->n; i++)
            fprintf(stderr, "  %s\n", d->msg[i]);
        return EXIT_USAGE;
    }
    const char *name = cfg_str(pl, "name");
    if (name) {
        pl->name = str_dup(name);
    } else {
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        pl->name = strndup(base, strcspn(base, "."));
    }
    pl->seed = (unsigned long)(c->seed >= 0 ? c->seed : cfg_int(pl, "seed", 42));
    config_setting_t *s = c->seed >= 0 ? config_lookup(&pl->cfg, "seed") : NULL;
    if (s)
        config_setting_set_int64(s, c->seed);
    gsl_rng_set(pl->rng, pl->seed);
    return 0;
}

/* The run itself, in its results folder; the exit status. */
static int execute(pipeline *pl, const cli *c)
{
    const char *run = cfg_str(pl, "run");
    const driver *dr = drivers;
    while (strcmp(dr->name, run) != 0)
        dr++;
    signals_install(); /* before the run folder exists: once it does, a signal is handled */
    if (run_begin(pl, c->out) != 0) {
        world_fail(err_get(), EXIT_RUNTIME);
        fprintf(stderr, "runner: %s\n", err_get());
        return EXIT_RUNTIME;
    }
    double t0 = time_now();
    err_clear();
    /* train, embed and sts split their work over the ranks; the other runs
     * are rank 0's alone (the others would only write the same files) */
    int shared = !strcmp(run, "train") || !strcmp(run, "embed") || !strcmp(run, "sts");
    int rc = shared || world_is_root() ? dr->run(pl) : 0;
    char *cause = rc != 0 ? str_dup(err_get()) : NULL;
    if (rc != 0 && world_size() == 1)
        fprintf(stderr, "runner: %s\n", cause);
    if (run_end(pl, rc, time_now() - t0) != 0)
        fprintf(stderr, "runner: %s\n", err_get());
    int status = rc == 0 ? 0 : rc == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
    if (signals_caught())
        status = 128 + signals_caught();
    if (rc != 0) /* more than one rank: the whole job ends, naming this rank */
        world_fail(cause ? cause : "out of memory", status);
    free(cause);
    return status;
}

/* Everything after the options: the pipeline opened, then listed,
 * described, swept, checked or run. */
static int run_pipeline(pipeline *pl, cli *c, int argc, char **argv, diags *d, FILE **pictures)
{
    const char *file = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc) {
        fprintf(stderr, "runner: one pipeline at a time (got '%s' and '%s')\n", argv[optind], argv[optind + 1]);
        return EXIT_USAGE;
    }
    if (!file && !c->list && !c->describe_name) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (pipeline_open(pl, NULL, NULL) != 0) {
        fprintf(stderr, "runner: %s\n", err_get());
        return EXIT_RUNTIME;
    }
    pl->threads = c->threads;
    pl->quiet = c->quiet || !world_is_root(); /* one log per job: rank 0's */
    pl->resume = c->resume;
    if (c->list || c->describe_name)
        return list_or_describe(pl, c, file);
    free(pl->file);
    pl->file = str_dup(file);
    if (config_load(&pl->cfg, file) != 0 || (c->point ? config_setting_remove(config_root_setting(&pl->cfg), "sweep"), 0
                                                      : sweep_take_section(&c->sw, &pl->cfg, file)) != 0) {
        fprintf(stderr, "runner: %s\n", err_get());
        return EXIT_USAGE;
    }
    if (c->sw.naxes > 0)
        return run_sweep(pl, c, file);
    int status = configure(pl, c, file, d);
    if (status != 0)
        return status;
    if (c->check) {
        config_write(&pl->cfg, stdout);
        return 0;
    }
    const char *stdout_format = cfg_str(pl, "output.stdout");
    if (stdout_format && strcmp(stdout_format, "jsonl") == 0)
        *pictures = stderr; /* stdout carries JSON Lines */
    return execute(pl, c);
}

/* glibc adapts its mmap and trim thresholds as blocks come and go, and a
 * run that frees and allocates buffers of 1-16 MiB call after call (oneDNN's
 * GEMM workspaces, our activations) hands their pages back to the kernel
 * and faults them in again: 125k page faults for an encode that needs 46k,
 * 0.2 s of system time, and run to run it varies. Fixed thresholds (those
 * glibc would adapt to at most) keep freed memory for reuse; blocks of
 * 32 MiB and more still come from mmap and go back when freed. */
static void malloc_policy(void)
{
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

int main(int argc, char **argv)
{
    malloc_policy();
    signals_block(); /* before any thread: every thread inherits the mask */
    gsl_errors_return(); /* before anything can call GSL: no abort() from it */
    cli c;
    memset(&c, 0, sizeof c);
    c.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    c.jobs = 1;
    c.seed = -1;
    c.sets = calloc((size_t)argc, sizeof *c.sets);
    FILE *pictures = stdout;
    pipeline pl;
    memset(&pl, 0, sizeof pl);
    diags d;
    diag_init(&d);
    if (!c.sets)
        return EXIT_RUNTIME;
    int status = parse_args(argc, argv, &c);
    if (status == 0 && c.collect) {
        status = sweep_collect(c.collect, c.quiet);
    } else if (status == 0) {
        threads_setup(c.threads, argv);
        status = world_init(&argc, &argv) != 0 ? EXIT_RUNTIME : run_pipeline(&pl, &c, argc, argv, &d, &pictures);
    }
    if (status < 0) /* --help, --version */
        status = 0;
    plot_list_print(pictures); /* the last line names every picture drawn */
    /* several ranks: end them all (MPI_Finalize, and freeing a shared
     * window in pipeline_close, would wait for the others) */
    if (status != 0)
        world_fail("see the message above", status);
    sweep_free(&c.sw);
    diag_free(&d);
    pipeline_close(&pl);
    free(c.sets);
    world_finalize();
    return status;
}
