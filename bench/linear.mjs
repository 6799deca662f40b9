// qkv's projection GEMM (Linear, the fused QKV projection of MultiHeadAttention) against
// OpenBLAS, the practical ceiling for float32 GEMM on a CPU: builds
// bench/linear-vs-openblas.cpp against Debian's libopenblas-dev (CMake QKV_BUILD_BENCH),
// runs it with the same thread count for both, and writes bench/results/linear.json and the
// README's projection table.
//   node bench/linear.mjs [--threads N] [--no-readme]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const args = process.argv.slice(2);
const threads = Number(args.includes('--threads') ? args[args.indexOf('--threads') + 1] : Math.min(2, availableParallelism()));
const build = join(root, 'build', 'bench-native');

execFileSync('cmake', ['-S', root, '-B', build, '-DQKV_BUILD_BENCH=ON', '-DQKV_CUDA=OFF', '-DCMAKE_BUILD_TYPE=Release'], { stdio: 'ignore' });
try {
  execFileSync('cmake', ['--build', build, '-j', '2', '--target', 'qkv_linear_bench'], { stdio: 'ignore' });
} catch {
  console.log('projection benchmark skipped: OpenBLAS not found (Debian: apt install libopenblas-dev)');
  process.exit(0);
}
const result = JSON.parse(execFileSync(join(build, 'qkv_linear_bench'), [String(threads)], { encoding: 'utf8' }));
result.date = new Date().toISOString();
for (const s of result.shapes) {
  console.log(
    `${s.label.padEnd(50)} qkv ${s.qkvMs.toFixed(3)} ms (${s.qkvGflops.toFixed(1)} GF/s) | OpenBLAS ${s.openblasMs.toFixed(3)} ms ` +
      `(${s.openblasGflops.toFixed(1)} GF/s) | ×OpenBLAS ${(s.openblasMs / s.qkvMs).toFixed(2)} | max rel diff ${s.maxRelDiff}`,
  );
}
mkdirSync(join(here, 'results'), { recursive: true });
writeFileSync(join(here, 'results', 'linear.json'), JSON.stringify(result, null, 2) + '\n');

const table = [
  `y = x·Wᵀ, float32, ${threads} threads for both; median time and GFLOP/s (2·M·N·K). OpenBLAS: Debian's libopenblas ` +
    `(cblas_sgemm; cblas_sgemv for one row). ${result.date.slice(0, 10)}.`,
  '',
  '| projection | qkv | OpenBLAS | × OpenBLAS |',
  '|---|---|---|---|',
  ...result.shapes.map(
    (s) => `| ${s.label} | ${s.qkvMs.toFixed(3)} ms · ${s.qkvGflops.toFixed(1)} | ${s.openblasMs.toFixed(3)} ms · ${s.openblasGflops.toFixed(1)} | ${(s.openblasMs / s.qkvMs).toFixed(2)} |`,
  ),
].join('\n');
const readmePath = join(root, 'README.md');
if (!args.includes('--no-readme') && existsSync(readmePath)) {
  const readme = readFileSync(readmePath, 'utf8');
  const [start, end] = ['<!-- bench-linear:start -->', '<!-- bench-linear:end -->'];
  if (readme.includes(start) && readme.includes(end)) {
    writeFileSync(readmePath, readme.slice(0, readme.indexOf(start) + start.length) + '\n' + table + '\n' + readme.slice(readme.indexOf(end)));
    console.log('README.md projection table updated');
  }
}
