/* export.h — the files that make a checkpoint folder load in Hugging Face
 * transformers and sentence-transformers, and describe its heads:
 *   config.json       the backbone's, describing this model: architectures
 *                     ["BertModel"], no stale _name_or_path, labels
 *                     (id2label/label2id for a single sentence task;
 *                     "task_labels": per task, always)
 *   modules.json, 1_Pooling/config.json, 2_Normalize/ (when normalized),
 *   sentence_bert_config.json, config_sentence_transformers.json
 *                     the pooling and normalisation the run used
 *   heads.json        per task: head architecture (the pipeline's head
 *                     section), loss, label names, tensor names and shapes
 *                     of heads.safetensors; the pooler feeding the heads
 * meta: nmeta key/value pairs as saved in the safetensors metadata
 * ("labels.<task>" = names separated by newlines). */
#ifndef EXPORT_H
#define EXPORT_H

#include "params.h"
#include "pipeline.h"

int export_hf_config(const char *dir, const char *const *meta, int nmeta);
int export_st_files(const char *dir, pipeline *pl, const char *model_dir);
int export_heads_json(const char *dir, const pipeline *pl, const char *const *meta, int nmeta);

#endif
