/* plot.c — gnuplot PNGs (see plot.h). */
#include "plot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run.h"
#include "runner/kit/util.h"

int plot_available(void)
{
    static int known = -1;
    if (known < 0)
        known = system("command -v gnuplot >/dev/null 2>&1") == 0;
    return known;
}

int plot_script(pipeline *pl, const char *png, const char *script)
{
    if (!plot_available()) {
        pipeline_log(pl, RUNNER_LOG_INFO, "gnuplot is not installed: %s not drawn", png);
        return 0;
    }
    char *path = run_path(pl, png), *tmp = str_printf("%s/.%s.tmp", pl->out_dir, png);
    char *cmd = str_printf("cd '%s' && gnuplot 2>/dev/null", pl->out_dir);
    int rc = -1;
    if (!path || !tmp || !cmd) {
        err_set("out of memory");
        goto done;
    }
    FILE *p = popen(cmd, "w");
    if (!p) {
        err_set("cannot run gnuplot");
        goto done;
    }
    fprintf(p, "set terminal pngcairo size 1000,800 font 'sans,10'\nset output '.%s.tmp'\n%s\n",
            png, script);
    int st = pclose(p);
    if (st != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        pipeline_log(pl, RUNNER_LOG_WARN, "gnuplot failed to draw %s", png);
        rc = 0; /* a missing plot is not a failed run */
        goto done;
    }
    rc = 0;
done:
    free(path);
    free(tmp);
    free(cmd);
    return rc;
}

int plot_heatmap(pipeline *pl, const char *png, const char *title, int n, const double *m)
{
    size_t cap = 4096 + (size_t)n * (size_t)n * 48;
    char *s = malloc(cap);
    if (!s)
        return err_set("out of memory");
    size_t used = (size_t)snprintf(s, cap,
                                   "set title '%s'\nunset key\nset size ratio -1\n"
                                   "set cbrange [-1:1]\nset palette defined (-1 'blue', 0 'white', 1 'red')\n"
                                   "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n"
                                   "set xtics 1 format '%%g'\nset ytics 1 format '%%g'\n"
                                   "set xlabel 'sentence'\nset ylabel 'sentence'\n"
                                   "$m << EOD\n",
                                   title, n - 1, n - 1);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++)
            used += (size_t)snprintf(s + used, cap - used, "%s%.4f", j ? " " : "", m[i * n + j]);
        used += (size_t)snprintf(s + used, cap - used, "\n");
    }
    snprintf(s + used, cap - used,
             "EOD\nplot $m matrix with image, $m matrix using 1:2:(sprintf('%%.2f',$3)) with labels font ',8'\n");
    int rc = plot_script(pl, png, s);
    free(s);
    return rc;
}
