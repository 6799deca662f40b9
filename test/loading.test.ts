// The built package as users load it: CommonJS, ESM, and inside worker_threads.
// Uses dist/ (built by `npm install` through the prepare script).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { backends } from '../lib';

const root = join(__dirname, '..');
const cjs = join(root, 'dist', 'cjs', 'index.js');
const esm = join(root, 'dist', 'esm', 'index.mjs');

// One small causal attention; prints the first output element and the backend used.
const program = (load: string) => `
${load}
const n = 2 * 4 * 8;
const x = Float32Array.from({ length: n }, (_, i) => Math.sin(i));
const t = { data: x, shape: [1, 2, 4, 8] };
const out = qkv.attention(t, t, t, { causal: true });
console.log(JSON.stringify({ first: out.data[0], backend: qkv.backends().default, exports: Object.keys(qkv).sort() }));
`;

function run(args: string[]): { first: number; backend: string; exports: string[] } {
  return JSON.parse(execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }));
}

describe('package entry points', () => {
  it('dist/ is built', () => {
    expect(existsSync(cjs), 'run `npm run build:ts`').toBe(true);
    expect(existsSync(esm)).toBe(true);
  });

  it('require() and import give the same API and result', () => {
    const fromCjs = run(['-e', program(`const qkv = require(${JSON.stringify(cjs)});`)]);
    const fromEsm = run(['--input-type=module', '-e', program(`import * as qkv from ${JSON.stringify(esm)};`)]);
    expect(fromEsm.first).toBe(fromCjs.first);
    // the first query sees only the first key: the output is v[0][0]
    expect(fromCjs.first).toBe(Math.fround(Math.sin(0)));
    expect(fromEsm.exports.filter((n) => n !== 'default')).toEqual(fromCjs.exports);
    expect(fromCjs.exports).toEqual(
      expect.arrayContaining(['attention', 'attentionAsync', 'backends', 'mergeHeads', 'splitHeads', 'tensor']),
    );
    if (backends().cpu.available) expect(fromCjs.backend).toBe('cpu');
  });
});

describe.runIf(backends().cpu.available)('worker_threads', () => {
  it('loads the addon in several workers at once and computes there', async () => {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const qkv = require(${JSON.stringify(cjs)});
      const n = 2 * 64 * 16;
      const x = Float32Array.from({ length: n }, (_, i) => Math.cos(i * 0.37));
      const t = { data: x, shape: [1, 2, 64, 16] };
      qkv.attentionAsync(t, t, t, { causal: true, backend: 'cpu' }).then((out) => {
        const sync = qkv.attention(t, t, t, { causal: true, backend: 'cpu' });
        parentPort.postMessage({ same: out.data.every((y, i) => y === sync.data[i]), sum: out.data.reduce((a, b) => a + b, 0) });
      });
    `;
    const results = await Promise.all(
      Array.from({ length: 4 }, () => {
        const worker = new Worker(code, { eval: true });
        return new Promise<{ same: boolean; sum: number }>((resolve, reject) => {
          worker.once('message', (m) => {
            void worker.terminate();
            resolve(m);
          });
          worker.once('error', reject);
        });
      }),
    );
    for (const r of results) {
      expect(r.same).toBe(true);
      expect(r.sum).toBe(results[0].sum);
      expect(Number.isFinite(r.sum)).toBe(true);
    }
  });
});

describe('when the native addon cannot be used', () => {
  const script = `
const qkv = require(${JSON.stringify(cjs)});
const t = { data: Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)), shape: [1, 1, 4, 8] };
try {
  qkv.attention(t, t, t);
  qkv.attention(t, t, t);
  console.log('ran on ' + qkv.backends().default);
} catch (e) { console.log('threw ' + e.constructor.name + ': ' + e.message); }
`;
  const runWith = (env: Record<string, string>, cwd = root) => {
    const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
    const r = spawnSync(process.execPath, ['-e', script], { cwd, env: { ...process.env, ...env }, encoding: 'utf8' });
    return { stdout: r.stdout, stderr: r.stderr };
  };

  it('an explicit QKV_NATIVE_PATH that does not exist is an error, not a silent fallback', () => {
    const { stdout } = runWith({ QKV_NATIVE_PATH: '/nonexistent/qkv.node' });
    expect(stdout).toMatch(/threw Error: qkv: the native addon named by QKV_NATIVE_PATH cannot be used: QKV_NATIVE_PATH=\/nonexistent\/qkv.node does not exist/);
  });

  it('an explicit QKV_NATIVE_PATH that is not an addon is an error', () => {
    const { stdout } = runWith({ QKV_NATIVE_PATH: join(root, 'package.json') });
    expect(stdout).toMatch(/threw Error: qkv: the native addon named by QKV_NATIVE_PATH cannot be used: native addon failed to load from .*package\.json/);
  });

  it('an addon that is simply not built falls back to JS with one warning saying why', () => {
    const { mkdtempSync, cpSync } = require('node:fs') as typeof import('node:fs');
    const { tmpdir } = require('node:os') as typeof import('node:os');
    const copy = mkdtempSync(join(tmpdir(), 'qkv-nobuild-'));
    cpSync(join(root, 'package.json'), join(copy, 'package.json'));
    cpSync(join(root, 'dist'), join(copy, 'dist'), { recursive: true });
    const cjsCopy = join(copy, 'dist', 'cjs', 'index.js');
    const { spawnSync } = require('node:child_process') as typeof import('node:child_process');
    const r = spawnSync(process.execPath, ['-e', script.replace(JSON.stringify(cjs), JSON.stringify(cjsCopy))], {
      env: { ...process.env, QKV_NATIVE_PATH: '' },
      encoding: 'utf8',
    });
    expect(r.stdout).toMatch(/ran on js/);
    const warnings = r.stderr.split('\n').filter((line) => line.includes('QKV_JS_FALLBACK'));
    expect(warnings).toHaveLength(1);
    expect(r.stderr).toMatch(/native addon is unavailable \(native addon not built \(looked for .*qkv-nobuild-.*build\/Release\/qkv\.node/);
  });
});

describe.runIf(backends().cpu.available)("the binding's calling convention", () => {
  it('the addon states the layout this version writes', async () => {
    const { layoutMismatch, nativeAddon } = await import('../lib/backends/native');
    expect(layoutMismatch(nativeAddon().addon!.layout)).toBeNull();
  });

  it('an addon lacking a field this version writes is refused, naming it', async () => {
    const { layoutMismatch, nativeAddon } = await import('../lib/backends/native');
    const layout = structuredClone(nativeAddon().addon!.layout);
    delete (layout.header as Record<string, number>).diagonalOffset; // an addon from before the field existed
    expect(layoutMismatch(layout)).toBe('header.diagonalOffset is missing');
    const codes = structuredClone(nativeAddon().addon!.layout);
    delete (codes.dtype as Record<string, number>).bfloat16;
    expect(layoutMismatch(codes)).toBe('dtype.bfloat16 is missing');
    expect(layoutMismatch(undefined)).toBe('it states no layout');
  });
});
