/* main.c — the runner command line: load a pipeline, apply --set
 * overrides, check it against the schema and the plugins' key tables,
 * and hand it to the driver its `run` setting names. */
#include <getopt.h>
#include <stdio.h>
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

int main(int argc, char **argv)
{
    enum { O_SET = 256, O_OUT, O_CHECK, O_LIST, O_DESCRIBE, O_THREADS, O_SEED, O_QUIET,
           O_HELP, O_VERSION, O_RESUME, O_JSONL, O_SWEEP, O_JOBS, O_COLLECT, O_POINT };
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
    gsl_errors_return(); /* before anything can call GSL: no abort() from it */
    const char **sets = calloc((size_t)argc, sizeof *sets);
    int nsets = 0, check = 0, list = 0, quiet = 0, threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = 1, point = 0;
    FILE *pictures = stdout; /* stderr when stdout carries JSON Lines */
    const char *out = NULL, *describe_name = NULL, *resume = NULL, *collect = NULL;
    sweep sw = {0};
    long long seed = -1;
    int status = 0, c;
    pipeline pl;
    memset(&pl, 0, sizeof pl);
    diags d;
    diag_init(&d);
    if (!sets)
        return EXIT_RUNTIME;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case O_SET: sets[nsets++] = optarg; break;
        case O_OUT: out = optarg; break;
        case O_CHECK: check = 1; break;
        case O_LIST: list = 1; break;
        case O_DESCRIBE: describe_name = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_COLLECT: collect = optarg; break;
        case O_POINT: point = 1; break;
        case O_SWEEP:
            if (sweep_add_arg(&sw, optarg) != 0) {
                fprintf(stderr, "runner: %s\n", err_get());
                status = EXIT_USAGE;
                goto done;
            }
            break;
        case O_JOBS:
            if (parse_count("--jobs", optarg, 256, &jobs) != 0) {
                status = EXIT_USAGE;
                goto done;
            }
            break;
        case O_THREADS:
            if (parse_count("--threads", optarg, 1024, &threads) != 0) {
                status = EXIT_USAGE;
                goto done;
            }
            break;
        case O_SEED:
            seed = strtoll(optarg, &end, 10);
            if (*end || seed < 0) {
                fprintf(stderr, "runner: --seed %s: expected a non-negative integer\n", optarg);
                status = EXIT_USAGE;
                goto done;
            }
            break;
        case O_QUIET: quiet = 1; break;
        case O_JSONL: sets[nsets++] = "output.stdout=\"jsonl\""; break;
        case 'h':
        case O_HELP: usage(stdout); goto done;
        case 'V':
        case O_VERSION: printf("runner %s (plugin ABI %d.%d)\n", RUNNER_VERSION,
                               RUNNER_ABI_MAJOR, RUNNER_ABI_MINOR); goto done;
        default:
            fprintf(stderr, "runner: unknown or incomplete option '%s' (see runner --help)\n",
                    argv[optind - 1]);
            status = EXIT_USAGE;
            goto done;
        }
    }
    if (collect) {
        status = sweep_collect(collect, quiet);
        goto done;
    }
    threads_setup(threads, argv);
    if (world_init(&argc, &argv) != 0) {
        status = EXIT_RUNTIME;
        goto done;
    }
    const char *file = optind < argc ? argv[optind] : NULL;
    if (optind + 1 < argc) {
        fprintf(stderr, "runner: one pipeline at a time (got '%s' and '%s')\n", argv[optind],
                argv[optind + 1]);
        status = EXIT_USAGE;
        goto done;
    }
    if (!file && !list && !describe_name) {
        usage(stderr);
        status = EXIT_USAGE;
        goto done;
    }
    if (pipeline_open(&pl, NULL, NULL) != 0) {
        fprintf(stderr, "runner: %s\n", err_get());
        status = EXIT_RUNTIME;
        goto done;
    }
    pl.threads = threads;
    pl.quiet = quiet || !world_is_root(); /* one log per job: rank 0's */
    pl.resume = resume;
    if (list || describe_name) {
        if (file && config_load(&pl.cfg, file) == 0) {
            const config_setting_t *pp = config_lookup(&pl.cfg, "plugin_path");
            for (int i = 0; pp && i < config_setting_length(pp); i++)
                loader_add_dir(&pl.L, config_setting_get_string_elem(pp, i));
        }
        if (list)
            loader_list(&pl.L, !quiet);
        if (describe_name)
            status = describe(&pl.L, describe_name);
        goto done;
    }
    free(pl.file);
    pl.file = str_dup(file);
    if (config_load(&pl.cfg, file) != 0 || (point ? config_setting_remove(config_root_setting(&pl.cfg), "sweep"), 0
                                                  : sweep_take_section(&sw, &pl.cfg, file)) != 0) {
        fprintf(stderr, "runner: %s\n", err_get());
        status = EXIT_USAGE;
        goto done;
    }
    if (sw.naxes > 0) {
        const char *nm = NULL;
        char *base = NULL;
        if (!config_lookup_string(&pl.cfg, "name", &nm)) {
            const char *slash = strrchr(file, '/');
            base = strndup(slash ? slash + 1 : file, strcspn(slash ? slash + 1 : file, "."));
        }
        sweep_opts so = {file, out, nm ? nm : base, sets, nsets, threads, jobs, quiet, seed};
        if (check)
            sweep_list(&sw);
        status = check ? 0 : sweep_run(&sw, &so);
        free(base);
        goto done;
    }
    if (!config_lookup(&pl.cfg, "output")) /* its defaults, and --set cannot create a group */
        config_setting_add(config_root_setting(&pl.cfg), "output", CONFIG_TYPE_GROUP);
    for (int i = 0; i < nsets; i++) {
        char *a = normalise_assignment(sets[i]);
        if (!a || config_override(&pl.cfg, a, &pl.origins) != 0)
            diag_add(&d, "%s", err_get());
        free(a);
    }
    pipeline_validate(&pl, &d);
    if (d.n) {
        fprintf(stderr, "runner: %s: %d error%s in the pipeline:\n", file, d.n, d.n > 1 ? "s" : "");
        for (int i = 0; i < d.n; i++)
            fprintf(stderr, "  %s\n", d.msg[i]);
        status = EXIT_USAGE;
        goto done;
    }
    const char *name = cfg_str(&pl, "name");
    if (name) {
        pl.name = str_dup(name);
    } else {
        const char *base = strrchr(file, '/');
        base = base ? base + 1 : file;
        pl.name = strndup(base, strcspn(base, "."));
    }
    pl.seed = (unsigned long)(seed >= 0 ? seed : cfg_int(&pl, "seed", 42));
    if (seed >= 0) {
        config_setting_t *s = config_lookup(&pl.cfg, "seed");
        if (s)
            config_setting_set_int64(s, seed);
    }
    gsl_rng_set(pl.rng, pl.seed);
    if (check) {
        config_write(&pl.cfg, stdout);
        goto done;
    }
    const char *stdout_format = cfg_str(&pl, "output.stdout");
    if (stdout_format && strcmp(stdout_format, "jsonl") == 0)
        pictures = stderr;
    const char *run = cfg_str(&pl, "run");
    const driver *dr = drivers;
    while (strcmp(dr->name, run) != 0)
        dr++;
    signals_install(); /* before the run folder exists: once it does, a signal is handled */
    if (run_begin(&pl, out) != 0) {
        world_fail(err_get(), EXIT_RUNTIME);
        fprintf(stderr, "runner: %s\n", err_get());
        status = EXIT_RUNTIME;
        goto done;
    }
    double t0 = time_now();
    err_clear();
    /* train, embed and sts split their work over the ranks; the other runs
     * are rank 0's alone (the others would only write the same files) */
    int shared = !strcmp(run, "train") || !strcmp(run, "embed") || !strcmp(run, "sts");
    int rc = shared || world_is_root() ? dr->run(&pl) : 0;
    char *cause = rc != 0 ? str_dup(err_get()) : NULL;
    if (rc != 0 && world_size() == 1)
        fprintf(stderr, "runner: %s\n", cause);
    if (run_end(&pl, rc, time_now() - t0) != 0)
        fprintf(stderr, "runner: %s\n", err_get());
    status = rc == 0 ? 0 : rc == EXIT_USAGE ? EXIT_USAGE : EXIT_RUNTIME;
    if (signals_caught())
        status = 128 + signals_caught();
    if (rc != 0) /* more than one rank: the whole job ends, naming this rank */
        world_fail(cause ? cause : "out of memory", status);
    free(cause);
done:
    plot_list_print(pictures); /* the last line names every picture drawn */
    sweep_free(&sw);
    diag_free(&d);
    pipeline_close(&pl);
    free(sets);
    if (status != 0) /* several ranks: end them all (MPI_Finalize would wait for the others) */
        world_fail("see the message above", status);
    world_finalize();
    return status;
}
