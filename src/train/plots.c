/* plots.c — the training run's PNG plots (gnuplot). */
#include <fnmatch.h>
#include <gsl/gsl_randist.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer.h"
#include "runner/kit/util.h"

int tr_draw_plots(trainer *tr)
{
    char s[8192];
    size_t used = (size_t)snprintf(s, sizeof s,
                                   "set datafile separator ','\nset key outside right\nset xlabel 'step'\n"
                                   "set ylabel 'loss'\nset title 'training and dev loss'\nset grid\nplot ");
    for (int k = 0; k < tr->m.ntasks; k++)
        used += (size_t)snprintf(s + used, sizeof s - used,
                                 "%s'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'train' ? $5 : NaN) "
                                 "with lines title '%s train', "
                                 "'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'dev' ? $5 : NaN) "
                                 "with linespoints title '%s dev'",
                                 k ? ", " : "", tr->m.t[k].name, tr->m.t[k].name, tr->m.t[k].name,
                                 tr->m.t[k].name);
    if (plot_script(tr->pl, "loss.png", s) != 0)
        return -1;
    used = (size_t)snprintf(s, sizeof s,
                            "set datafile separator ','\nset key outside right\nset xlabel 'step'\n"
                            "set ylabel 'headline dev metric'\nset title 'dev metrics'\nset grid\nplot ");
    for (int k = 0; k < tr->m.ntasks; k++) {
        const char *metric = tr->final_v[k].n ? tr->final_v[k].name[0] : "loss";
        used += (size_t)snprintf(s + used, sizeof s - used,
                                 "%s'metrics.csv' using 1:(strcol(3) eq '%s' && strcol(4) eq 'dev' ? "
                                 "column('%s') : NaN) with linespoints title '%s %s'",
                                 k ? ", " : "", tr->m.t[k].name, metric, tr->m.t[k].name, metric);
    }
    if (plot_script(tr->pl, "dev_metrics.png", s) != 0)
        return -1;
    for (int k = 0; k < tr->m.ntasks; k++) {
        const task *t = &tr->m.t[k];
        if (t->n_labels > 40 || t->mlm)
            continue;
        char png[300];
        snprintf(png, sizeof png, "confusion_%s.png", t->name);
        snprintf(s, sizeof s,
                 "set datafile separator ','\nunset key\nset title 'confusion matrix, %s (dev, best step)'\n"
                 "set xlabel 'predicted'\nset ylabel 'gold'\nset palette defined (0 'white', 1 'dark-blue')\n"
                 "set xtics rotate by 45 right\n"
                 "plot 'confusion_%s.csv' matrix rowheaders columnheaders using 1:2:3 with image, "
                 "'' matrix rowheaders columnheaders using 1:2:(sprintf('%%d',$3)) with labels",
                 t->name, t->name);
        if (plot_script(tr->pl, png, s) != 0)
            return -1;
    }
    return 0;
}
