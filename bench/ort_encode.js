// ONNX Runtime peer for bench/encode: encodes an ids file (the runner's
// ids.txt format: one sentence per line, space-separated token ids) with the
// model exported by `torch_bert.py export-onnx` (inputs input_ids and
// attention_mask int64 [B,T], output sentence_embedding float32 [B,C] =
// mean-pooled last layer), in length-sorted batches (longest first) like the
// PyTorch peer. Prints load time, steady-state sentences/s and peak RSS.
//
//   node bench/ort_encode.js --model bench/out/minilm-l6-random.onnx --ids bench/out/dev_ids.txt
//        [--batch 32] [--threads 2] [--save emb.npy] [--save-optimized graph.onnx]
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { batch: 32, threads: 2 };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i].replace(/^--/, '');
    if (!['model', 'ids', 'batch', 'threads', 'save', 'save-optimized'].includes(key) || i + 1 >= argv.length)
      throw new Error(`unknown option or missing value: ${argv[i]}`);
    a[key] = argv[++i];
  }
  if (!a.model || !a.ids) throw new Error('--model and --ids are required');
  a.batch = parseInt(a.batch, 10);
  a.threads = parseInt(a.threads, 10);
  if (!(a.batch > 0) || !(a.threads > 0)) throw new Error('--batch and --threads must be positive integers');
  return a;
}

function readIds(path) {
  const lines = fs.readFileSync(path, 'utf8').split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.map((line, i) => {
    const ids = line.trim().split(/\s+/).map(Number);
    if (!line.trim() || ids.some((v) => !Number.isInteger(v) || v < 0))
      throw new Error(`${path}:${i + 1}: not a list of token ids`);
    return ids;
  });
}

// A little-endian float32 .npy file of shape [n, c].
function saveNpy(path, data, n, c) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${n}, ${c}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre[7] = 0;
  pre.writeUInt16LE(header.length, 8);
  fs.writeFileSync(path, Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const opts = {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (a['save-optimized']) opts.optimizedModelFilePath = a['save-optimized'];
  const session = await ort.InferenceSession.create(a.model, opts);
  const seqs = readIds(a.ids);
  const t1 = performance.now();

  const order = seqs.map((_, i) => i).sort((x, y) => seqs[y].length - seqs[x].length || x - y);
  let out = null;
  let C = 0;
  for (let s = 0; s < order.length; s += a.batch) {
    const idx = order.slice(s, s + a.batch);
    const B = idx.length;
    const T = Math.max(...idx.map((i) => seqs[i].length));
    const ids = new BigInt64Array(B * T);
    const mask = new BigInt64Array(B * T);
    idx.forEach((i, b) => {
      seqs[i].forEach((v, t) => {
        ids[b * T + t] = BigInt(v);
        mask[b * T + t] = 1n;
      });
    });
    const r = await session.run({
      input_ids: new ort.Tensor('int64', ids, [B, T]),
      attention_mask: new ort.Tensor('int64', mask, [B, T]),
    });
    const emb = r.sentence_embedding;
    if (!out) {
      C = emb.dims[1];
      out = new Float32Array(seqs.length * C);
    }
    idx.forEach((i, b) => out.set(emb.data.subarray(b * C, (b + 1) * C), i * C));
  }
  const t2 = performance.now();
  if (a.save) saveNpy(a.save, out, seqs.length, C);
  const load = (t1 - t0) / 1e3, steady = (t2 - t1) / 1e3, sps = seqs.length / steady;
  const rssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(`onnxruntime-node ${ort.env.versions.node} encode: ${seqs.length} sentences, batch ${a.batch}, ` +
    `${a.threads} threads: load ${load.toFixed(3)} s, encode ${steady.toFixed(3)} s, ` +
    `${sps.toFixed(1)} sentences/s (steady state), peak RSS ${rssMiB.toFixed(0)} MiB`);
  console.log(`RESULT engine=onnxruntime sentences=${seqs.length} load_s=${load.toFixed(4)} ` +
    `steady_s=${steady.toFixed(4)} steady_sps=${sps.toFixed(2)}`);
  await session.release();
}

main().catch((err) => {
  console.error(`ort_encode.js: ${err.message}`);
  process.exit(1);
});
